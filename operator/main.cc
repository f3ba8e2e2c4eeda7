// kmm-operator: reconciles Module objects into per-kernel loader DaemonSets. Parses flags
// and wires the operator libraries together.
//
//   kmm-operator [flags]                     run the operator against the cluster
//   kmm-operator plan --module F --nodes F   print what it would create, without a cluster
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include "common/cli.h"
#include "common/logging.h"
#include "common/shutdown.h"
#include "operator/controllers/manager.h"
#include "operator/kube/curl_kube_client.h"
#include "operator/kube/leader_election.h"
#include "operator/kube/probe_server.h"
#include "operator/plan_command.h"
#include "spdlog/spdlog.h"

namespace {

// Runs the operator until SIGTERM/SIGINT; returns the exit code.
int RunOperator(const std::string& kubeconfig, kmm::controllers::ManagerOptions options,
                bool leader_elect, const std::string& leader_election_namespace,
                const std::string& metrics_address, const std::string& probe_address,
                kmm::ShutdownSignal& shutdown) {
  absl::StatusOr<kmm::kube::RestConfig> config = kmm::kube::LoadRestConfig(kubeconfig);
  if (!config.ok()) {
    spdlog::error("{}", config.status().message());
    return EXIT_FAILURE;
  }
  kmm::kube::Registry registry;
  kmm::kube::ClientMetrics client_metrics(registry);
  kmm::kube::RequestMetrics request_metrics(client_metrics);
  kmm::kube::ClientOptions client_options;
  client_options.observer = &request_metrics;
  auto client = kmm::kube::CurlKubeClient::Create(*config, client_options);
  if (!client.ok()) {
    spdlog::error("{}", client.status().message());
    return EXIT_FAILURE;
  }
  spdlog::info("API server {} ({})", (*client)->config().server, (*client)->config().source);

  char host[256] = "kmm-operator";
  gethostname(host, sizeof(host) - 1);
  options.identity = std::string(host) + "_" + std::to_string(std::random_device{}() % 100000);
  kmm::controllers::Manager manager(**client, options, registry);

  kmm::kube::LeaderElectionConfig election{leader_election_namespace.empty()
                                               ? (*client)->config().default_namespace
                                               : leader_election_namespace,
                                           "kmm-operator.kmm.sigs.x-k8s.io", options.identity};
  kmm::kube::LeaderElector elector(**client, election);
  std::atomic<bool> controllers_running{false};

  // Probes and metrics; an empty address or "0" turns one off.
  std::vector<std::unique_ptr<kmm::kube::ProbeServer>> servers;
  auto serve = [&](const std::string& address, bool probes) -> bool {
    if (address.empty() || address == "0") return true;
    auto server = std::make_unique<kmm::kube::ProbeServer>(address, &registry);
    if (probes) {
      // Alive: the informers' loops and, on the leader, the work loops run and progress.
      server->AddHealthCheck("loops", [&] { return manager.Liveness(); });
      server->AddReadinessCheck("caches", [&] {
        return manager.CachesSynced() ? absl::OkStatus()
                                      : absl::UnavailableError("the caches are not synced yet");
      });
      server->AddReadinessCheck("leader", [&] {
        if (!leader_elect || controllers_running) return absl::OkStatus();
        return absl::UnavailableError("standing by; the leader is " + elector.ObservedHolder());
      });
    }
    if (absl::Status status = server->Start(); !status.ok()) {
      spdlog::error("{}", status.message());
      return false;
    }
    servers.push_back(std::move(server));
    return true;
  };
  if (!serve(probe_address, true)) return EXIT_FAILURE;
  if (metrics_address != probe_address && !serve(metrics_address, false)) return EXIT_FAILURE;

  kmm::kube::Cancellation cancel;
  std::thread signal_waiter([&] {
    shutdown.Wait();
    spdlog::info("shutting down");
    cancel.Cancel();
  });
  manager.StartCaches();
  int code = EXIT_SUCCESS;
  auto lead = [&] {
    if (!manager.StartControllers(cancel, absl::Minutes(5))) {
      code = EXIT_FAILURE;
      shutdown.RequestShutdown();
      return;
    }
    controllers_running = true;
  };
  if (leader_elect) {
    elector.Run(cancel, lead, [&] {
      // Lost or released: stop reconciling at once, then exit so a restart campaigns afresh.
      controllers_running = false;
      manager.Stop();
      if (!cancel.cancelled()) code = EXIT_FAILURE;
      shutdown.RequestShutdown();
    });
  } else {
    lead();
  }
  shutdown.Wait();
  manager.Stop();
  for (auto& server : servers) server->Stop();
  signal_waiter.join();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Few malloc arenas: glibc's default (8 per core) lets each worker and informer thread keep
  // its own freed memory, which at 5,000 nodes is most of the operator's RSS.
  mallopt(M_ARENA_MAX, 2);
  // A fixed threshold: large buffers (a page of a list, a long watch chunk) get their own
  // mapping and go back to the kernel when freed, instead of glibc raising the threshold
  // and leaving them as holes in the heap.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  CLI::App app{"kmm-operator: Kernel Module Management for Kubernetes", "kmm-operator"};
  app.fallthrough();
  kmm::AddVersionFlag(app, "kmm-operator");
  kmm::LogOptions log_options;
  kmm::AddLogFlags(app, log_options);
  kmm::desired::OperatorSettings settings;
  app.add_option("--loader-image", settings.loader_image,
                 "Image with kmm-loader, kmm-loader-run and kmm-copy, run by every loader pod")
      ->capture_default_str();
  app.add_option("--priority-class", settings.priority_class,
                 "PriorityClass of loader, unload and device-plugin pods (empty: none). Not "
                 "system-node-critical by default: managed clusters such as GKE admit "
                 "system-*-critical pods only in kube-system (a ResourceQuota scoped to them), "
                 "and these pods run in each Module's namespace; manifests/ create this class")
      ->capture_default_str();
  app.add_option("--unload-timeout", settings.unload_timeout_seconds,
                 "Seconds a loader retries unloading a busy module")
      ->capture_default_str();
  app.add_option("--builder-image", settings.builder_image,
                 "Image of kaniko's executor, which in-cluster build and sign Jobs run "
                 "(build.kanikoParams.tag picks another tag of it)")
      ->capture_default_str();
  app.add_option("--builder-arg", settings.builder_args,
                 "An extra argument for every build and sign (repeat), e.g. --builder-arg "
                 "--insecure-registry=registry.example:5000");
  app.add_option("--signer-image", settings.signer_image,
                 "Image with /usr/local/bin/sign-file and a shell, which sign Jobs sign modules in")
      ->capture_default_str();
  app.add_option("--finished-job-ttl", settings.finished_job_ttl_seconds,
                 "Seconds a finished build or sign Job (and its pods' logs) is kept; a failed "
                 "build is retried after it is removed")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{60}, int64_t{7 * 24 * 3600}));
  std::string kubeconfig;
  app.add_option("--kubeconfig", kubeconfig, "Kubeconfig file (default: in-cluster config)");

  kmm::controllers::ManagerOptions manager_options;
  app.add_option("--workers", manager_options.workers, "Module reconcilers running in parallel")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--namespace", manager_options.watch_namespaces,
                 "Watch Modules in these namespaces only (repeat or comma-separate; default: all)")
      ->delimiter(',');
  bool leader_elect = false;
  app.add_flag("--leader-elect", leader_elect,
               "Run the controllers only while holding the kmm-operator Lease");
  std::string leader_election_namespace;
  app.add_option("--leader-election-namespace", leader_election_namespace,
                 "Namespace of the Lease (default: the operator's own)");
  std::string metrics_address = ":8080", probe_address = ":8081";
  app.add_option("--metrics-bind-address", metrics_address, "Serve /metrics here (0: off)")
      ->capture_default_str();
  app.add_option("--health-probe-bind-address", probe_address,
                 "Serve /healthz and /readyz here (0: off)")
      ->capture_default_str();

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
  absl::StatusOr<std::unique_ptr<kmm::ShutdownSignal>> shutdown = kmm::ShutdownSignal::Install();
  if (!shutdown.ok()) {
    spdlog::error("{}", shutdown.status().message());
    return EXIT_FAILURE;
  }
  manager_options.settings = settings;
  return RunOperator(kubeconfig, manager_options, leader_elect, leader_election_namespace,
                     metrics_address, probe_address, **shutdown);
}
