// Command-line conventions shared by the kmm binaries: the same --version output and the
// same handling of bad flags (a clear message on stderr and a non-zero exit).
#ifndef KMM_COMMON_CLI_H_
#define KMM_COMMON_CLI_H_

#include <string>
#include <string_view>

#include "CLI/CLI.hpp"

namespace kmm {

// "kmm-loader 0.1.0"
std::string VersionString(std::string_view program);

// Adds --version to `app`.
void AddVersionFlag(CLI::App& app, std::string_view program);

// Parses argv into `app`. Returns -1 when the program should continue, otherwise the exit
// code: 0 after --help/--version, non-zero (with the reason on stderr) for bad flags.
int ParseCommandLine(CLI::App& app, int argc, const char* const* argv);

}  // namespace kmm

#endif  // KMM_COMMON_CLI_H_
