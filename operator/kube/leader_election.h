// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: a candidate takes
// the Lease when it is free or its holder has not renewed it for leaseDuration (measured on
// our own clock from when we last saw it change, so clock skew between nodes does not
// matter), renews it every retryPeriod while leading, gives up leadership when it cannot
// renew within renewDeadline, and releases the Lease on shutdown so a successor need not
// wait. Updates are conditional on resourceVersion, so two candidates never both win.
#ifndef KMM_OPERATOR_KUBE_LEADER_ELECTION_H_
#define KMM_OPERATOR_KUBE_LEADER_ELECTION_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "nlohmann/json.hpp"
#include "operator/kube/cancellation.h"
#include "operator/kube/kube_client.h"

namespace kmm::kube {

struct LeaderElectionConfig {
  std::string lease_namespace;
  std::string lease_name;
  std::string identity;  // unique per candidate: pod name plus a random suffix
  absl::Duration lease_duration = absl::Seconds(15);
  absl::Duration renew_deadline = absl::Seconds(10);
  absl::Duration retry_period = absl::Seconds(2);
};

// Checks the durations relate as they must (lease > renew deadline > retry period > 0).
absl::Status ValidateLeaderElectionConfig(const LeaderElectionConfig& config);

class LeaderElector {
 public:
  LeaderElector(KubeClient& client, LeaderElectionConfig config, Clock& clock = RealClock());

  // One attempt to acquire (or, when leading, renew) the Lease. True when we hold it now.
  // An error is a failed attempt (API unreachable, lost an update race); the caller retries.
  absl::StatusOr<bool> TryAcquireOrRenew();

  // Gives the Lease up if we hold it (holder cleared, duration 1 s) so another candidate can
  // take it at once.
  absl::Status Release();

  // Campaigns until `cancel` fires: calls `on_started_leading` once we lead, then renews;
  // if renewing fails for renew_deadline, calls `on_stopped_leading` and returns (the
  // process should exit, as client-go's users do, rather than risk two leaders). On cancel
  // while leading, releases the Lease and calls `on_stopped_leading`.
  void Run(const Cancellation& cancel, const std::function<void()>& on_started_leading,
           const std::function<void()>& on_stopped_leading);

  bool IsLeader() const { return leading_.load(std::memory_order_acquire); }
  // The holder we last saw on the Lease (possibly us).
  std::string ObservedHolder() const;
  const LeaderElectionConfig& config() const { return config_; }

 private:
  // Records `lease` (just written by us) as held; returns true.
  bool Hold(const nlohmann::json& lease, absl::Time now);
  nlohmann::json LeaseSpec(absl::Time now, int transitions,
                           std::optional<absl::Time> acquired) const;

  KubeClient& client_;
  const LeaderElectionConfig config_;
  Clock& clock_;
  std::atomic<bool> leading_{false};

  // What we last saw of the Lease and when (on our clock); only the campaigning thread
  // touches these, apart from ObservedHolder's read under mu_.
  mutable absl::Mutex mu_;
  std::string observed_holder_ ABSL_GUARDED_BY(mu_);
  std::string observed_renew_time_ ABSL_GUARDED_BY(mu_);
  absl::Time observed_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  nlohmann::json observed_lease_ ABSL_GUARDED_BY(mu_);
};

// MicroTime as the API server writes it: 2006-01-02T15:04:05.000000Z.
std::string FormatMicroTime(absl::Time time);

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_LEADER_ELECTION_H_
