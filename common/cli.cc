#include "common/cli.h"

#include "common/version.h"
#include "fmt/format.h"

namespace kmm {

std::string VersionString(std::string_view program) {
  return fmt::format("{} {}", program, kVersion);
}

void AddVersionFlag(CLI::App& app, std::string_view program) {
  app.set_version_flag("--version", VersionString(program), "Print the version and exit");
}

int ParseCommandLine(CLI::App& app, int argc, char** argv) {
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
