// kmm-device-plugin: advertises a kernel module's devices to the kubelet. Parses flags and
// wires the device plugin library together; kmm-loader runs the same library in-process.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/cli.h"
#include "common/json_fields.h"
#include "common/logging.h"
#include "common/shutdown.h"
#include "deviceplugin/device_plugin.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the blocked signal mask.
  absl::StatusOr<std::unique_ptr<kmm::ShutdownSignal>> shutdown = kmm::ShutdownSignal::Install();
  if (!shutdown.ok()) {
    fmt::print(stderr, "kmm-device-plugin: {}\n", shutdown.status().message());
    return EXIT_FAILURE;
  }
  CLI::App app{"kmm-device-plugin: advertises kernel-module devices to the kubelet",
               "kmm-device-plugin"};
  kmm::AddVersionFlag(app, "kmm-device-plugin");
  kmm::LogOptions log_options;
  kmm::AddLogFlags(app, log_options);
  std::string config_path;
  kmm::deviceplugin::DevicePluginOptions options;
  app.add_option("--config", config_path, "Device plugin config (JSON)")->required();
  app.add_option("--device-plugin-dir", options.device_plugin_dir,
                 "Directory holding the kubelet's registration socket")
      ->capture_default_str();
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  if (absl::Status status = kmm::SetupLogging("kmm-device-plugin", log_options); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }

  std::ifstream file(config_path);
  if (!file) {
    spdlog::error("cannot read the config {}: {}", config_path, std::strerror(errno));
    return EXIT_FAILURE;
  }
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<nlohmann::json> json = kmm::ParseJson(text.str(), config_path);
  absl::StatusOr<kmm::deviceplugin::DevicePluginConfig> config =
      json.ok() ? kmm::deviceplugin::ParseDevicePluginConfig(*json, "config") : json.status();
  if (!config.ok()) {
    spdlog::error("{}: {}", config_path, config.status().message());
    return EXIT_FAILURE;
  }
  auto source = kmm::deviceplugin::MakeUdevDeviceSource(config->uevent_source);
  if (!source.ok()) {
    spdlog::error("{}", source.status().message());
    return EXIT_FAILURE;
  }
  auto plugin = kmm::deviceplugin::DevicePlugin::Create(*config, options, std::move(*source));
  if (!plugin.ok()) {
    spdlog::error("{}", plugin.status().message());
    return EXIT_FAILURE;
  }
  if (absl::Status status = (*plugin)->Start(); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }
  (*shutdown)->Wait();
  (*plugin)->Stop();
  return EXIT_SUCCESS;
}
