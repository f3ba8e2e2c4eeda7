// The static kmm-loader's device plugin host: it cannot load libudev, so `run` continues as
// kmm-loader-run, which can (device_plugin_host.h).
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/status.h"
#include "fmt/format.h"
#include "loader/device_plugin_host.h"
#include "spdlog/spdlog.h"

namespace kmm::loader {

absl::Status EnsureDevicePluginHost(const LoaderConfig& config, char** argv) {
  if (!config.device_plugin.has_value()) return absl::OkStatus();
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    return absl::InternalError(fmt::format(
        "cannot find kmm-loader's own path, beside which kmm-loader-run (which runs the "
        "device plugin) is installed: {}",
        error.message()));
  }
  std::string host = (self.parent_path() / "kmm-loader-run").string();
  spdlog::info("the config has a devicePlugin: continuing as {}, which runs it in-process", host);
  spdlog::default_logger()->flush();
  argv[0] = host.data();
  execv(host.c_str(), argv);
  return ErrnoError(errno, fmt::format("cannot execute {}, which runs the device plugin; it is "
                                       "installed beside kmm-loader (the loader image has both)",
                                       host));
}

absl::StatusOr<std::unique_ptr<HostedDevicePlugin>> StartDevicePlugin(
    const LoaderConfig& config, const std::string& /*device_plugin_dir*/) {
  if (!config.device_plugin.has_value()) return nullptr;
  // EnsureDevicePluginHost replaced this process before `run` got here.
  return absl::FailedPreconditionError(
      "the static kmm-loader cannot run the device plugin; kmm-loader-run does");
}

}  // namespace kmm::loader
