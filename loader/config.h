// The kmm-loader configuration: the Module CRD's `spec.moduleLoader.container.modprobe`
// object (same field names and meaning as upstream KMM) plus the node-side settings the
// operator fills in. Parsed from JSON; every error names the field and the fix.
//
// The one definition of the operator-loader contract (docs/design.md §3.1): the operator
// builds a LoaderConfig and writes it with SerializeLoaderConfig, kmm-loader reads it with
// ParseLoaderConfig. Both link this alone (kmm_loader_config), without libkmod.
#ifndef KMM_LOADER_CONFIG_H_
#define KMM_LOADER_CONFIG_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "deviceplugin/config.h"
#include "nlohmann/json.hpp"

namespace kmm::loader {

// Upstream's ModprobeArgs: extra modprobe command-line words for loading and unloading.
struct ModprobeArgs {
  std::vector<std::string> load;
  std::vector<std::string> unload;

  bool operator==(const ModprobeArgs&) const = default;
};

struct LoaderConfig {
  // --- upstream modprobe spec ---
  std::string module_name;               // moduleName; may be empty only with rawArgs
  std::string dir_name = "/opt";         // dirName: modules live in <dirName>/lib/modules/<kernel>
  std::vector<std::string> parameters;   // parameters: key=value options for moduleName
  std::optional<ModprobeArgs> args;      // args: modprobe flags before the module name
  std::optional<ModprobeArgs> raw_args;  // rawArgs: whole modprobe command lines
  std::string firmware_path;             // firmwarePath, relative to dirName
  // modulesLoadingOrder: upmost module first (moduleName), then what it depends on.
  std::vector<std::string> modules_loading_order;

  // --- node-side settings ---
  std::vector<std::string> in_tree_modules_to_remove;
  std::string kernel_version;  // empty: the running kernel
  std::string firmware_host_path = "/lib/firmware";
  std::string readiness_file;  // written once loaded (run mode); empty: none
  std::string termination_message_path = "/dev/termination-log";
  // The built-in device plugin, started by `run` after loading and stopped before unloading.
  std::optional<deviceplugin::DevicePluginConfig> device_plugin;

  bool operator==(const LoaderConfig&) const = default;
};

// Parses and validates a loader config. `source` names the input in errors (a file path).
absl::StatusOr<LoaderConfig> ParseLoaderConfig(std::string_view json_text, std::string_view source);

// The JSON ParseLoaderConfig reads back as `config` (for a config it accepts). Fields at
// their parser default are left out, so the DaemonSet shows only what was set.
nlohmann::json SerializeLoaderConfig(const LoaderConfig& config);

// Reads and parses the config file at `path`.
absl::StatusOr<LoaderConfig> LoadLoaderConfigFile(const std::string& path);

}  // namespace kmm::loader

#endif  // KMM_LOADER_CONFIG_H_
