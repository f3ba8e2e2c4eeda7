// kmm-loader: the node agent of every loader pod. Parses flags and wires the loader
// library together; all behaviour lives in loader.h. Built twice: kmm-loader (static) and
// kmm-loader-run (which hosts the device plugin; see device_plugin_host.h).
#include <sys/utsname.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>

#include "common/cli.h"
#include "common/logging.h"
#include "common/shutdown.h"
#include "fmt/ranges.h"
#include "loader/config.h"
#include "loader/device_plugin_host.h"
#include "loader/loader.h"
#include "spdlog/spdlog.h"

namespace {

using kmm::loader::Loader;

// The kubelet shows this file's content as the container's termination message (at most
// 4096 bytes); the operator surfaces it in the Module's status.
void WriteTerminationMessage(const std::string& path, const std::string& message) {
  if (path.empty()) return;
  std::ofstream out(path, std::ios::trunc);
  out << message.substr(0, 4096);
  if (!out) spdlog::warn("cannot write the termination message to {}", path);
}

std::string RunningKernel() {
  utsname name{};
  uname(&name);
  return name.release;
}

int DoLoad(Loader& loader, const kmm::loader::LoaderConfig& config) {
  absl::StatusOr<std::vector<std::string>> live = loader.Load();
  if (!live.ok()) {
    spdlog::error("load failed: {}", live.status().message());
    WriteTerminationMessage(config.termination_message_path,
                            fmt::format("load failed: {}", live.status().message()));
    return EXIT_FAILURE;
  }
  const std::string outcome = fmt::format("loaded: {}", fmt::join(*live, ", "));
  spdlog::info("{}", outcome);
  WriteTerminationMessage(config.termination_message_path, outcome);
  return EXIT_SUCCESS;
}

int DoUnload(Loader& loader, const kmm::loader::LoaderConfig& config) {
  if (absl::Status status = loader.Unload(); !status.ok()) {
    spdlog::error("unload failed: {}", status.message());
    WriteTerminationMessage(config.termination_message_path,
                            fmt::format("unload failed: {}", status.message()));
    return EXIT_FAILURE;
  }
  spdlog::info("unloaded");
  WriteTerminationMessage(config.termination_message_path, "unloaded");
  return EXIT_SUCCESS;
}

// Load, start the device plugin, report ready, wait for SIGTERM/SIGINT, stop the plugin,
// unload. A loader for another kernel than the running one loads nothing and stays unready
// instead of crash-looping (docs/design.md §4).
int DoRun(Loader& loader, const kmm::loader::LoaderConfig& config, kmm::ShutdownSignal& shutdown,
          const std::string& device_plugin_dir) {
  if (!loader.TargetsRunningKernel()) {
    spdlog::warn("{}", loader.KernelMismatch());
    WriteTerminationMessage(config.termination_message_path, loader.KernelMismatch());
    shutdown.Wait();
    return EXIT_SUCCESS;
  }
  if (int code = DoLoad(loader, config); code != EXIT_SUCCESS) return code;
  // The plugin runs in this process, so it always stops before the modules go.
  absl::StatusOr<std::unique_ptr<kmm::loader::HostedDevicePlugin>> plugin =
      kmm::loader::StartDevicePlugin(config, device_plugin_dir);
  if (!plugin.ok()) {
    const std::string message =
        fmt::format("device plugin failed to start: {}", plugin.status().message());
    spdlog::error("{}", message);
    WriteTerminationMessage(config.termination_message_path, message);
    return EXIT_FAILURE;  // the modules stay loaded; a restarted loader finds them live
  }
  if (!config.readiness_file.empty()) {
    std::ofstream ready(config.readiness_file, std::ios::trunc);
    ready << "ready\n";
    if (!ready) spdlog::warn("cannot write the readiness file {}", config.readiness_file);
  }
  spdlog::info("ready; waiting for SIGTERM to unload");
  shutdown.Wait();
  if (!config.readiness_file.empty()) std::remove(config.readiness_file.c_str());
  if (*plugin) (*plugin)->Stop();
  return DoUnload(loader, config);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kmm-loader: loads and unloads out-of-tree kernel modules with libkmod",
               "kmm-loader"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommand
  kmm::AddVersionFlag(app, "kmm-loader");
  kmm::LogOptions log_options;
  kmm::AddLogFlags(app, log_options);
  std::string config_path;
  kmm::loader::LoaderOptions options;
  // Whole seconds, as kmm-operator passes them; the default of a double would be formatted
  // by libc's floating-point printf in every process (see kmm_fast_start).
  int64_t unload_timeout_seconds = 60;
  app.add_option("--unload-timeout", unload_timeout_seconds,
                 "Seconds to retry unloading a module that is in use (EBUSY)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  std::string device_plugin_dir = "/var/lib/kubelet/device-plugins";
  app.add_option("--device-plugin-dir", device_plugin_dir,
                 "The kubelet's device-plugin directory (run with a devicePlugin config)")
      ->capture_default_str();
  app.add_option("--host-root", options.host_root,
                 "Where the host's /lib/modules is mounted, for in-tree modules")
      ->capture_default_str();
  const std::pair<const char*, const char*> subcommands[] = {
      {"load", "Load the configured modules and exit"},
      {"unload", "Unload the configured modules and exit"},
      {"status", "Exit 0 iff every configured module is live"},
      {"run", "Load, report ready, wait for SIGTERM/SIGINT, then unload"},
  };
  std::string config_env;
  for (const auto& [name, description] : subcommands) {
    CLI::App* subcommand = app.add_subcommand(name, description);
    CLI::Option* file =
        subcommand->add_option("--config", config_path, "Loader config (JSON file)");
    // kmm-operator's DaemonSets put the config in the pod spec, where users can read it.
    CLI::Option* env = subcommand->add_option(
        "--config-env", config_env, "Name of an environment variable that holds the config JSON");
    file->excludes(env);
    subcommand->require_option(1);
  }
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  if (absl::Status status = kmm::SetupLogging("kmm-loader", log_options); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }
  options.unload_timeout = absl::Seconds(unload_timeout_seconds);

  absl::StatusOr<kmm::loader::LoaderConfig> config;
  if (!config_env.empty()) {
    const char* text = std::getenv(config_env.c_str());
    config = text != nullptr
                 ? kmm::loader::ParseLoaderConfig(text, "$" + config_env)
                 : absl::InvalidArgumentError(fmt::format(
                       "--config-env {}: the environment variable is not set", config_env));
  } else {
    config = kmm::loader::LoadLoaderConfigFile(config_path);
  }
  if (!config.ok()) {
    spdlog::error("{}", config.status().message());
    return EXIT_FAILURE;
  }
  Loader loader(*config, RunningKernel(), options, kmm::loader::MakeLibkmodBackend);
  const std::string command = app.get_subcommands().front()->get_name();
  if (command == "load") return DoLoad(loader, *config);
  if (command == "unload") return DoUnload(loader, *config);
  if (command == "run") {
    if (absl::Status host = kmm::loader::EnsureDevicePluginHost(*config, argv); !host.ok()) {
      spdlog::error("{}", host.message());
      WriteTerminationMessage(config->termination_message_path, std::string(host.message()));
      return EXIT_FAILURE;
    }
    // Only `run` waits for signals; the other subcommands keep the default actions.
    absl::StatusOr<std::unique_ptr<kmm::ShutdownSignal>> shutdown = kmm::ShutdownSignal::Install();
    if (!shutdown.ok()) {
      spdlog::error("{}", shutdown.status().message());
      return EXIT_FAILURE;
    }
    return DoRun(loader, *config, **shutdown, device_plugin_dir);
  }
  // status
  if (absl::Status live = loader.CheckLive(); !live.ok()) {
    spdlog::info("not ready: {}", live.message());
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
