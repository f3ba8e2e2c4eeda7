// kmm-operator: reconciles Module objects into per-kernel loader DaemonSets. Parses flags
// and wires the operator libraries together.
//
//   kmm-operator [flags]                     run the operator against the cluster
//   kmm-operator plan --module F --nodes F   print what it would create, without a cluster
#include <cstdlib>
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"
#include "operator/plan_command.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"kmm-operator: Kernel Module Management for Kubernetes", "kmm-operator"};
  app.fallthrough();
  kmm::AddVersionFlag(app, "kmm-operator");
  kmm::LogOptions log_options;
  kmm::AddLogFlags(app, log_options);
  kmm::desired::OperatorSettings settings;
  app.add_option("--loader-image", settings.loader_image,
                 "Image with kmm-loader and kmm-copy, run by every loader pod")
      ->capture_default_str();
  app.add_option("--unload-timeout", settings.unload_timeout_seconds,
                 "Seconds a loader retries unloading a busy module")
      ->capture_default_str();
  std::string kubeconfig;
  app.add_option("--kubeconfig", kubeconfig, "Kubeconfig file (default: in-cluster config)");

  kmm::PlanOptions plan;
  CLI::App* plan_command = app.add_subcommand(
      "plan", "Print every object the operator would create or change for a Module on some nodes");
  plan_command->add_option("--module", plan.module_file, "The Module (YAML or JSON)")->required();
  plan_command->add_option("--nodes", plan.nodes_file, "The nodes: kubectl get nodes -o json")
      ->required();
  plan_command->add_option("-o,--output", plan.output, "yaml or json")->capture_default_str();
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  if (absl::Status status = kmm::SetupLogging("kmm-operator", log_options); !status.ok()) {
    spdlog::error("{}", status.message());
    return EXIT_FAILURE;
  }
  if (plan_command->parsed()) {
    plan.settings = settings;
    if (absl::Status status = kmm::RunPlan(plan, std::cout, std::cerr); !status.ok()) {
      std::cerr << "kmm-operator plan: " << status.message() << "\n";
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }
  spdlog::error("kmm-operator: the controllers are not implemented yet; use `kmm-operator plan`");
  return EXIT_FAILURE;
}
