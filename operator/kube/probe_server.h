// The operator's HTTP endpoint for the kubelet and Prometheus: /healthz and /readyz run
// registered checks (200 when all pass, 500 listing the ones that fail), /metrics renders a
// Registry. Served by cpp-httplib on its own threads. Thread-safe: checks may be added
// while serving.
#ifndef KMM_OPERATOR_KUBE_PROBE_SERVER_H_
#define KMM_OPERATOR_KUBE_PROBE_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "operator/kube/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace kmm::kube {

// A check: OK when healthy/ready, otherwise a Status whose message says why not.
using ProbeCheck = std::function<absl::Status()>;

struct ListenAddress {
  std::string host;  // "0.0.0.0" when the address was ":port"
  int port = 0;      // 0: any free port
};

// Parses "host:port", ":port" (every interface) or "[ipv6]:port". InvalidArgument names the
// address and the expected form.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address);

class ProbeServer {
 public:
  // `address` as for ParseListenAddress, e.g. ":8081" or "127.0.0.1:0". `metrics` is
  // optional (without it /metrics is 404) and must outlive the server.
  ProbeServer(std::string address, const Registry* metrics);
  ~ProbeServer();
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  // Checks run on every request, in the order added, and should return quickly.
  void AddHealthCheck(std::string name, ProbeCheck check);
  void AddReadinessCheck(std::string name, ProbeCheck check);

  // Binds and starts serving; the port is bound when this returns. Errors name the address.
  // Call once: a second call fails.
  absl::Status Start();
  // Stops accepting, waits for requests in progress, joins the server thread. Idempotent.
  void Stop();

  // The port bound by Start (the chosen one for port 0); 0 before Start.
  int port() const { return port_; }

 private:
  using Checks = std::vector<std::pair<std::string, ProbeCheck>>;
  Checks HealthChecks() const;
  Checks ReadinessChecks() const;

  const std::string address_;
  const Registry* const metrics_;
  mutable absl::Mutex mu_;
  Checks health_checks_ ABSL_GUARDED_BY(mu_);
  Checks readiness_checks_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  absl::Notification listener_done_;
  int port_ = 0;
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_PROBE_SERVER_H_
