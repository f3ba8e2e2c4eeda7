// Turns a LoaderConfig into the concrete modules to load or unload, in order, with their
// options: upstream KMM's modprobe command lines (moduleName, parameters, args, rawArgs,
// modulesLoadingOrder) translated once, so the rest of the loader never re-reads them.
#ifndef KMM_LOADER_PLAN_H_
#define KMM_LOADER_PLAN_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "loader/config.h"

namespace kmm::loader {

struct ModuleRequest {
  std::string name;
  std::string options;  // space-separated key=value module parameters
  bool operator==(const ModuleRequest&) const = default;
};

struct LoadPlan {
  // Root of the module tree: modules are in <root>/lib/modules/<kernel>/. "/" is the host's.
  std::string root;
  std::string kernel_version;
  std::vector<ModuleRequest> modules;  // in load order; dependencies are added when loading
  bool first_time = false;             // --first-time: "already loaded" is an error
};

struct UnloadPlan {
  std::string root;
  std::string kernel_version;
  std::vector<std::string> modules;  // in unload order
  bool first_time = false;           // --first-time: "not loaded" is an error
};

// `kernel_version` is the target kernel (config.kernelVersion or the running one); a
// modprobe -S in args/rawArgs overrides it.
absl::StatusOr<LoadPlan> PlanLoad(const LoaderConfig& config, std::string_view kernel_version);
absl::StatusOr<UnloadPlan> PlanUnload(const LoaderConfig& config, std::string_view kernel_version);

}  // namespace kmm::loader

#endif  // KMM_LOADER_PLAN_H_
