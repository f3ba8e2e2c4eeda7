// Process-wide logging setup shared by kmm-operator, kmm-loader and kmm-device-plugin:
// spdlog to stderr, as human-readable text or as JSON lines (one object per line, for
// log collectors), with the level chosen by a flag.
#ifndef KMM_COMMON_LOGGING_H_
#define KMM_COMMON_LOGGING_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/status.h"  // fmt formatters for absl::Status and absl::string_view
#include "spdlog/formatter.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kmm {

struct LogOptions {
  std::string format = "text";  // "text" or "json"
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
};

// Adds --log-format and --log-level to a command line (defined in cli.cc).
void AddLogFlags(CLI::App& app, LogOptions& options);

// Installs the default logger named `component`. Fails with InvalidArgument naming the
// flag and the accepted values when an option is not recognised.
absl::Status SetupLogging(std::string_view component, const LogOptions& options);

// The formatter behind --log-format=json; exposed for tests.
// Each record: {"time":"<RFC 3339 UTC>","level":"info","logger":"<component>","msg":"..."}.
std::unique_ptr<spdlog::formatter> MakeJsonLogFormatter();

}  // namespace kmm

#endif  // KMM_COMMON_LOGGING_H_
