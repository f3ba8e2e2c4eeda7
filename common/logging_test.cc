#include "common/logging.h"

#include <gtest/gtest.h>

#include <string>

#include "nlohmann/json.hpp"
#include "spdlog/details/log_msg.h"

namespace kmm {
namespace {

std::string FormatJson(std::string_view payload) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, "kmm-loader", spdlog::level::warn,
                               spdlog::string_view_t(payload.data(), payload.size()));
  spdlog::memory_buf_t out;
  MakeJsonLogFormatter()->format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(JsonLogFormatter, WritesOneParsableObjectPerLine) {
  const std::string line = FormatJson("module \"kmm_ci_a\" is busy\nretrying");
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "embedded newline must be escaped";
  const nlohmann::json record = nlohmann::json::parse(line);
  EXPECT_EQ(record["level"], "warning");
  EXPECT_EQ(record["logger"], "kmm-loader");
  EXPECT_EQ(record["msg"], "module \"kmm_ci_a\" is busy\nretrying");
  const std::string time = record["time"];
  EXPECT_EQ(time.size(), std::string("2026-11-24T20:04:39.000000Z").size()) << time;
  EXPECT_EQ(time.back(), 'Z');
}

TEST(JsonLogFormatter, KeepsLinesWithInvalidUtf8) {
  const nlohmann::json record = nlohmann::json::parse(FormatJson("bad \xff byte"));
  EXPECT_EQ(record["msg"], "bad \xEF\xBF\xBD byte");
}

TEST(SetupLogging, RejectsUnknownFormatAndLevelNamingTheFlag) {
  LogOptions options;
  options.format = "xml";
  absl::Status status = SetupLogging("kmm-test", options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--log-format"), std::string::npos) << status;

  options = LogOptions{};
  options.level = "verbose";
  status = SetupLogging("kmm-test", options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--log-level"), std::string::npos) << status;

  options.level = "off";
  EXPECT_TRUE(SetupLogging("kmm-test", options).ok());
  options.format = "json";
  options.level = "debug";
  EXPECT_TRUE(SetupLogging("kmm-test", options).ok());
}

}  // namespace
}  // namespace kmm
