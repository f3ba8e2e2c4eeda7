// How `kmm-loader run` hosts the device plugin of a config that has one. kmm's device plugin
// runs in the loader's process (docs/design.md §4), but it needs libudev, which a static executable
// cannot load, and kmm-loader is static so that its short load, unload and status processes
// start fast. So the program is built twice, each build with one implementation of this
// header:
//  - kmm-loader (static; device_plugin_reexec.cc): `run` with a devicePlugin replaces itself,
//    before loading anything, with kmm-loader-run from the same directory and the same
//    arguments;
//  - kmm-loader-run (dynamic; device_plugin_in_process.cc): starts the plugin in its process.
#ifndef KMM_LOADER_DEVICE_PLUGIN_HOST_H_
#define KMM_LOADER_DEVICE_PLUGIN_HOST_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "loader/config.h"

namespace kmm::loader {

// A device plugin serving in this process.
class HostedDevicePlugin {
 public:
  virtual ~HostedDevicePlugin() = default;
  // Stops advertising and serving; `run` calls it before unloading.
  virtual void Stop() = 0;
};

// OK when this process can host `config`'s device plugin, or the config has none. Otherwise
// replaces this process with one that can (execv with `argv`: no return on success), or says
// why it could not.
absl::Status EnsureDevicePluginHost(const LoaderConfig& config, char** argv);

// Starts `config`'s device plugin in this process; nullptr when the config has none.
absl::StatusOr<std::unique_ptr<HostedDevicePlugin>> StartDevicePlugin(
    const LoaderConfig& config, const std::string& device_plugin_dir);

}  // namespace kmm::loader

#endif  // KMM_LOADER_DEVICE_PLUGIN_HOST_H_
