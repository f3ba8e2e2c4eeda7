// kmm-device-plugin: advertises a kernel module's devices to the kubelet. Parses flags and
// wires the device plugin library together.
#include <cstdlib>

#include "common/cli.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"kmm-device-plugin: advertises kernel-module devices to the kubelet",
               "kmm-device-plugin"};
  kmm::AddVersionFlag(app, "kmm-device-plugin");
  kmm::LogOptions log_options;
  kmm::AddLogFlags(app, log_options);
  std::string config_path;
  std::string device_plugin_dir = "/var/lib/kubelet/device-plugins/";
  app.add_option("--config", config_path, "Device plugin config (JSON)")->required();
  app.add_option("--device-plugin-dir", device_plugin_dir,
                 "Directory holding the kubelet's registration socket")
      ->capture_default_str();
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  if (absl::Status status = kmm::SetupLogging("kmm-device-plugin", log_options); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }
  spdlog::error("kmm-device-plugin: not implemented yet");
  return EXIT_FAILURE;
}
