// Runs kmm-device-plugin as a child of `kmm-loader run`. kmm-loader is a static executable,
// so it starts fast but cannot load libudev; the device plugin serves from its own process.
// This class starts that process, waits until it serves, notices if it exits on its own, and
// stops it before the modules are unloaded. UnexpectedExit() may be called from any thread;
// Stop() from one at a time.
#ifndef KMM_LOADER_PLUGIN_PROCESS_H_
#define KMM_LOADER_PLUGIN_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kmm::loader {

// The environment variable through which the child gets its config (the devicePlugin object).
inline constexpr char kDevicePluginConfigEnv[] = "KMM_DEVICE_PLUGIN_CONFIG";

struct DevicePluginProcessOptions {
  std::string binary;                   // the kmm-device-plugin executable
  std::string config_json;              // the devicePlugin object of the loader config
  std::vector<std::string> extra_args;  // e.g. --device-plugin-dir DIR, --log-level LEVEL
  absl::Duration start_timeout = absl::Seconds(30);  // until it serves
  absl::Duration stop_timeout = absl::Seconds(10);   // after SIGTERM, then SIGKILL
};

class DevicePluginProcess {
 public:
  // Starts the plugin and returns once it serves every resource's socket. Fails, naming the
  // binary and how it ended, when it exits or does not serve within start_timeout.
  // `on_unexpected_exit` runs (on a monitor thread) if it later exits before Stop().
  static absl::StatusOr<std::unique_ptr<DevicePluginProcess>> Start(
      const DevicePluginProcessOptions& options, std::function<void()> on_unexpected_exit);

  ~DevicePluginProcess();  // Stop()s a plugin that still runs
  DevicePluginProcess(const DevicePluginProcess&) = delete;
  DevicePluginProcess& operator=(const DevicePluginProcess&) = delete;

  // SIGTERM, SIGKILL after stop_timeout, then waits. An error when it did not exit with 0.
  absl::Status Stop();

  // How the plugin ended when it exited before Stop() ("exited with status 1"), else nullopt.
  std::optional<std::string> UnexpectedExit() const;

 private:
  DevicePluginProcess(pid_t pid, DevicePluginProcessOptions options,
                      std::function<void()> on_unexpected_exit);
  // Waits for the child to exit, records how, then reaps it (see plugin_process.cc).
  void Monitor();
  // Sends `signal` unless the child has exited (and its pid may be reused).
  void Signal(int signal);

  const pid_t pid_;
  const DevicePluginProcessOptions options_;
  const std::function<void()> on_unexpected_exit_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  bool exited_cleanly_ ABSL_GUARDED_BY(mu_) = false;
  bool exited_unexpectedly_ ABSL_GUARDED_BY(mu_) = false;  // before Stop()
  std::string how_it_ended_ ABSL_GUARDED_BY(mu_);
  std::thread monitor_;
};

// kmm-device-plugin beside `self` (kmm-loader's own path): both ship in the loader image.
std::string DefaultDevicePluginBinary(const std::string& self);

}  // namespace kmm::loader

#endif  // KMM_LOADER_PLUGIN_PROCESS_H_
