// kmm-loader: the node agent of every loader pod. Parses flags and wires the loader
// library together; all behaviour lives in the library.
#include <cstdlib>

#include "common/cli.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"kmm-loader: loads and unloads out-of-tree kernel modules with libkmod",
               "kmm-loader"};
  app.require_subcommand(1);
  kmm::AddVersionFlag(app, "kmm-loader");
  kmm::LogOptions log_options;
  kmm::AddLogFlags(app, log_options);
  std::string config_path;
  for (const char* name : {"load", "unload", "status", "run"}) {
    CLI::App* sub = app.add_subcommand(name);
    sub->add_option("--config", config_path, "Loader config (JSON)")->required();
  }
  app.get_subcommand("load")->description("Load the configured modules and exit");
  app.get_subcommand("unload")->description("Unload the configured modules and exit");
  app.get_subcommand("status")->description("Exit 0 iff every configured module is live");
  app.get_subcommand("run")->description("Load, report ready, wait for SIGTERM, then unload");
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  if (absl::Status status = kmm::SetupLogging("kmm-loader", log_options); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }
  spdlog::error("kmm-loader {}: not implemented yet", app.get_subcommands().front()->get_name());
  return EXIT_FAILURE;
}
