#include "common/logging.h"

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace kmm {
namespace {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const absl::Time time = absl::FromChrono(msg.time);
    const nlohmann::json record = {
        {"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone())},
        {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                              spdlog::level::to_string_view(msg.level).size())},
        {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
    };
    // Invalid UTF-8 in a message must not make a log line disappear.
    const std::string line =
        record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLogFormatter>();
  }
};

}  // namespace

std::unique_ptr<spdlog::formatter> MakeJsonLogFormatter() {
  return std::make_unique<JsonLogFormatter>();
}

absl::Status SetupLogging(std::string_view component, const LogOptions& options) {
  std::unique_ptr<spdlog::formatter> formatter;
  if (options.format == "json") {
    formatter = MakeJsonLogFormatter();
  } else if (options.format == "text") {
    formatter = std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v",
                                                            spdlog::pattern_time_type::utc);
  } else {
    return absl::InvalidArgumentError(fmt::format(
        "--log-format: unknown format \"{}\"; use \"text\" or \"json\"", options.format));
  }
  const spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  // from_str maps anything it does not know to "off"; only "off" itself may mean off.
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError(fmt::format(
        "--log-level: unknown level \"{}\"; use trace, debug, info, warn, error, critical or off",
        options.level));
  }
  auto logger = std::make_shared<spdlog::logger>(std::string(component),
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::move(formatter));
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace kmm
