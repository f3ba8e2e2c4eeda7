// kmm-operator: reconciles Module objects into per-kernel loader DaemonSets. Parses flags
// and wires the operator libraries together.
#include <cstdlib>

#include "common/cli.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"kmm-operator: Kernel Module Management for Kubernetes", "kmm-operator"};
  kmm::AddVersionFlag(app, "kmm-operator");
  kmm::LogOptions log_options;
  kmm::AddLogFlags(app, log_options);
  std::string kubeconfig;
  app.add_option("--kubeconfig", kubeconfig, "Kubeconfig file (default: in-cluster config)");
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  if (absl::Status status = kmm::SetupLogging("kmm-operator", log_options); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }
  spdlog::error("kmm-operator: not implemented yet");
  return EXIT_FAILURE;
}
