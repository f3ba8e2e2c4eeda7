// kmm-lease-candidate: one leader-election candidate for the integration test of Leases.
// Campaigns for a Lease with the given identity and prints "leading" / "stopped" lines on
// stdout as that changes; SIGTERM releases the Lease. The test runs two and kills one.
//
//   kmm-lease-candidate KUBECONFIG NAMESPACE LEASE IDENTITY LEASE_MS RENEW_MS RETRY_MS
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/shutdown.h"
#include "operator/kube/curl_kube_client.h"
#include "operator/kube/leader_election.h"

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s KUBECONFIG NAMESPACE LEASE IDENTITY LEASE_MS RENEW_MS RETRY_MS\n",
                 argv[0]);
    return 2;
  }
  auto shutdown = kmm::ShutdownSignal::Install();  // before any thread
  if (!shutdown.ok()) return 1;
  auto config = kmm::kube::LoadKubeconfig(argv[1]);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  auto client = kmm::kube::CurlKubeClient::Create(*config, {});
  if (!client.ok()) return 1;
  kmm::kube::LeaderElectionConfig election{argv[2], argv[3], argv[4],
                                           absl::Milliseconds(std::atoi(argv[5])),
                                           absl::Milliseconds(std::atoi(argv[6])),
                                           absl::Milliseconds(std::atoi(argv[7]))};
  kmm::kube::LeaderElector elector(**client, election);
  kmm::kube::Cancellation cancel;
  std::thread waiter([&] {
    (*shutdown)->Wait();
    cancel.Cancel();
  });
  elector.Run(
      cancel, [] { std::printf("leading\n"), std::fflush(stdout); },
      [] { std::printf("stopped\n"), std::fflush(stdout); });
  (*shutdown)->RequestShutdown();
  waiter.join();
  return 0;
}
