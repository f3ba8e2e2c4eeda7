// Reads modprobe command-line words, as found in upstream KMM's `args` and `rawArgs`, so
// that Modules written for upstream's modprobe-based worker keep their meaning with
// libkmod. Only the flags that make sense for a loader pod are accepted; the rest are
// refused with a reason instead of being silently ignored.
#ifndef KMM_LOADER_MODPROBE_COMMAND_H_
#define KMM_LOADER_MODPROBE_COMMAND_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kmm::loader {

struct ModprobeCommand {
  std::optional<std::string> dir_name;        // -d, --dirname
  std::optional<std::string> kernel_version;  // -S, --set-version
  bool remove = false;                        // -r, --remove
  bool all = false;                           // -a, --all: every word is a module name
  bool first_time = false;                    // --first-time
  std::vector<std::string> words;             // everything that is not a flag, in order
};

// `field` names the config field in errors, e.g. "config.rawArgs.load".
absl::StatusOr<ModprobeCommand> ParseModprobeCommand(const std::vector<std::string>& argv,
                                                     std::string_view field);

// `argv` with every value ParseModprobeCommand would read as -d/--dirname (in any spelling:
// "-d DIR", "-dDIR", "-vd DIR", "--dirname DIR", "--dirname=DIR") replaced by map(value).
// The operator uses it to point args and rawArgs into the pod's copy of the module image;
// words the parser would refuse are left as they are, for the loader to refuse.
std::vector<std::string> MapModprobeDirNames(
    std::vector<std::string> argv, const std::function<std::string(std::string_view)>& map);

}  // namespace kmm::loader

#endif  // KMM_LOADER_MODPROBE_COMMAND_H_
