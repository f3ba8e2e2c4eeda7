// kmm-device-plugin: advertises a kernel module's devices to the kubelet. Parses flags and
// wires the device plugin library together. `kmm-loader run` starts it as a child process.
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/cli.h"
#include "common/json_fields.h"
#include "common/logging.h"
#include "common/shutdown.h"
#include "deviceplugin/device_plugin.h"
#include "spdlog/spdlog.h"

namespace {

// The config from a file or from an environment variable (as kmm-loader passes it).
absl::StatusOr<kmm::deviceplugin::DevicePluginConfig> ReadConfig(const std::string& path,
                                                                 const std::string& env) {
  std::string text;
  std::string source = path;
  if (!env.empty()) {
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) {
      return absl::InvalidArgumentError(
          fmt::format("--config-env {}: the environment variable is not set", env));
    }
    text = value;
    source = "$" + env;
  } else {
    std::ifstream file(path);
    if (!file) {
      return absl::NotFoundError(
          fmt::format("cannot read the config {}: {}", path, std::strerror(errno)));
    }
    std::stringstream content;
    content << file.rdbuf();
    text = content.str();
  }
  absl::StatusOr<nlohmann::json> json = kmm::ParseJson(text, source);
  if (!json.ok()) return json.status();
  absl::StatusOr<kmm::deviceplugin::DevicePluginConfig> config =
      kmm::deviceplugin::ParseDevicePluginConfig(*json, "config");
  if (!config.ok()) return kmm::Annotate(config.status(), source);
  return config;
}

}  // namespace

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
  std::string config_env;
  int ready_fd = -1;
  kmm::deviceplugin::DevicePluginOptions options;
  CLI::Option* file = app.add_option("--config", config_path, "Device plugin config (JSON file)");
  CLI::Option* env = app.add_option("--config-env", config_env,
                                    "Name of an environment variable that holds the config JSON");
  file->excludes(env);
  app.add_option("--device-plugin-dir", options.device_plugin_dir,
                 "Directory holding the kubelet's registration socket")
      ->capture_default_str();
  // How `kmm-loader run` starts and supervises the plugin (loader/plugin_process.h).
  app.add_option("--ready-fd", ready_fd,
                 "Write \"ready\" to this descriptor once serving; exit when the parent does");
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  if (absl::Status status = kmm::SetupLogging("kmm-device-plugin", log_options); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }
  if (config_path.empty() && config_env.empty()) {
    spdlog::error("give the config with --config FILE or --config-env VARIABLE");
    return EXIT_FAILURE;
  }
  // A plugin left behind by a killed kmm-loader would advertise devices of modules that
  // may be unloaded; the kernel stops it with its parent instead.
  if (ready_fd >= 0 && prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
    spdlog::warn("cannot tie the plugin's life to its parent: {}", std::strerror(errno));
  }

  absl::StatusOr<kmm::deviceplugin::DevicePluginConfig> config =
      ReadConfig(config_path, config_env);
  if (!config.ok()) {
    spdlog::error("{}", config.status().message());
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
  if (ready_fd >= 0) {
    if (write(ready_fd, "ready\n", 6) != 6) {
      spdlog::warn("cannot report readiness on descriptor {}: {}", ready_fd, std::strerror(errno));
    }
    close(ready_fd);
  }
  (*shutdown)->Wait();
  (*plugin)->Stop();
  return EXIT_SUCCESS;
}
