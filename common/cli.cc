#include "common/cli.h"

#include "common/logging.h"
#include "common/version.h"
#include "fmt/format.h"

namespace kmm {

std::string VersionString(std::string_view program) {
  return fmt::format("{} {}", program, kVersion);
}

void AddVersionFlag(CLI::App& app, std::string_view program) {
  app.set_version_flag("--version", VersionString(program), "Print the version and exit");
}

// Declared in logging.h; defined here, with the other CLI11 code, so that logging.cc does not
// include CLI11 and its static initialisers do not run in programs that parse flags without it.
void AddLogFlags(CLI::App& app, LogOptions& options) {
  app.add_option("--log-format", options.format, "Log output: text or json (one object per line)")
      ->capture_default_str();
  app.add_option("--log-level", options.level,
                 "Minimum level: trace, debug, info, warn, error, critical, off")
      ->capture_default_str();
}

int ParseCommandLine(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // CLI11 prints --help/--version output and exits 0 for them; for real errors it prints
    // the reason ("The following arguments were not expected: --bogus") and a hint.
    return app.exit(error);
  }
  return -1;
}

}  // namespace kmm
