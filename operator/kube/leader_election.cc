#include "operator/kube/leader_election.h"

#include "common/status.h"
#include "fmt/format.h"
#include "operator/kube/api_error.h"
#include "spdlog/spdlog.h"

namespace kmm::kube {

std::string FormatMicroTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
}

absl::Status ValidateLeaderElectionConfig(const LeaderElectionConfig& config) {
  if (config.lease_name.empty() || config.lease_namespace.empty()) {
    return absl::InvalidArgumentError("leader election: the Lease name and namespace must be set");
  }
  if (config.identity.empty()) {
    return absl::InvalidArgumentError("leader election: the candidate identity must be set");
  }
  if (config.retry_period <= absl::ZeroDuration() || config.renew_deadline <= config.retry_period ||
      config.lease_duration <= config.renew_deadline) {
    return absl::InvalidArgumentError(fmt::format(
        "leader election: need lease duration ({}) > renew deadline ({}) > retry period ({}) > 0",
        absl::FormatDuration(config.lease_duration), absl::FormatDuration(config.renew_deadline),
        absl::FormatDuration(config.retry_period)));
  }
  return absl::OkStatus();
}

LeaderElector::LeaderElector(KubeClient& client, LeaderElectionConfig config, Clock& clock)
    : client_(client), config_(std::move(config)), clock_(clock) {}

nlohmann::json LeaderElector::LeaseSpec(absl::Time now, int transitions,
                                        std::optional<absl::Time> acquired) const {
  nlohmann::json spec = {
      {"holderIdentity", config_.identity},
      {"leaseDurationSeconds", std::max<int64_t>(1, absl::ToInt64Seconds(config_.lease_duration))},
      {"renewTime", FormatMicroTime(now)},
      {"leaseTransitions", transitions},
  };
  if (acquired) spec["acquireTime"] = FormatMicroTime(*acquired);
  return spec;
}

absl::StatusOr<bool> LeaderElector::TryAcquireOrRenew() {
  const absl::Time now = clock_.Now();
  absl::StatusOr<nlohmann::json> current =
      client_.Get(resources::kLeases, config_.lease_namespace, config_.lease_name);
  if (!current.ok() && !IsApiNotFound(current.status())) {
    return Annotate(current.status(), "reading the leader-election Lease");
  }
  if (!current.ok()) {
    nlohmann::json lease = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", config_.lease_name}, {"namespace", config_.lease_namespace}}},
        {"spec", LeaseSpec(now, 0, now)},
    };
    absl::StatusOr<nlohmann::json> created =
        client_.Create(resources::kLeases, config_.lease_namespace, lease);
    if (!created.ok()) {
      // AlreadyExists: another candidate created it first; we lost this round.
      if (IsApiAlreadyExists(created.status())) return false;
      return Annotate(created.status(), "creating the leader-election Lease");
    }
    return Hold(*created, now);
  }

  const nlohmann::json& spec =
      (*current).contains("spec") ? (*current)["spec"] : nlohmann::json::object();
  const std::string holder = spec.value("holderIdentity", "");
  const std::string renew_time = spec.value("renewTime", "");
  const int64_t duration_seconds = spec.value("leaseDurationSeconds", int64_t{0});
  const int transitions = spec.value("leaseTransitions", 0);
  bool expired;
  {
    absl::MutexLock lock(&mu_);
    // Time the holder's lease from when *we* saw it last change.
    if (holder != observed_holder_ || renew_time != observed_renew_time_) {
      observed_holder_ = holder;
      observed_renew_time_ = renew_time;
      observed_at_ = now;
    }
    observed_lease_ = *current;
    expired = observed_at_ + absl::Seconds(duration_seconds) <= now;
  }
  const bool ours = holder == config_.identity;
  if (!holder.empty() && !ours && !expired) {
    leading_.store(false, std::memory_order_release);
    return false;
  }

  nlohmann::json lease = *current;
  std::optional<absl::Time> acquired;
  if (ours) {
    // Renewal keeps acquireTime.
    lease["spec"] = LeaseSpec(now, transitions, std::nullopt);
    if (spec.contains("acquireTime")) lease["spec"]["acquireTime"] = spec["acquireTime"];
  } else {
    lease["spec"] = LeaseSpec(now, transitions + 1, now);
  }
  // Conditional on the resourceVersion we read: of two candidates racing, one gets Conflict.
  absl::StatusOr<nlohmann::json> updated =
      client_.Update(resources::kLeases, config_.lease_namespace, lease);
  if (!updated.ok()) {
    if (IsApiConflict(updated.status())) return false;
    return Annotate(updated.status(), "updating the leader-election Lease");
  }
  return Hold(*updated, now);
}

bool LeaderElector::Hold(const nlohmann::json& lease, absl::Time now) {
  absl::MutexLock lock(&mu_);
  observed_holder_ = config_.identity;
  observed_renew_time_ = lease["spec"].value("renewTime", "");
  observed_at_ = now;
  observed_lease_ = lease;
  leading_.store(true, std::memory_order_release);
  return true;
}

absl::Status LeaderElector::Release() {
  nlohmann::json lease;
  {
    absl::MutexLock lock(&mu_);
    if (!leading_.load(std::memory_order_acquire) || !observed_lease_.is_object()) {
      return absl::OkStatus();
    }
    lease = observed_lease_;
  }
  leading_.store(false, std::memory_order_release);
  const absl::Time now = clock_.Now();
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  lease["spec"]["renewTime"] = FormatMicroTime(now);
  lease["spec"]["acquireTime"] = FormatMicroTime(now);
  absl::StatusOr<nlohmann::json> updated =
      client_.Update(resources::kLeases, config_.lease_namespace, lease);
  if (!updated.ok()) return Annotate(updated.status(), "releasing the leader-election Lease");
  absl::MutexLock lock(&mu_);
  observed_holder_.clear();
  observed_lease_ = *updated;
  return absl::OkStatus();
}

std::string LeaderElector::ObservedHolder() const {
  absl::MutexLock lock(&mu_);
  return observed_holder_;
}

void LeaderElector::Run(const Cancellation& cancel, const std::function<void()>& on_started_leading,
                        const std::function<void()>& on_stopped_leading) {
  const std::string lease = fmt::format("{}/{}", config_.lease_namespace, config_.lease_name);
  // Campaign.
  std::string last_holder;
  while (!cancel.cancelled()) {
    absl::StatusOr<bool> acquired = TryAcquireOrRenew();
    if (acquired.ok() && *acquired) break;
    if (!acquired.ok()) {
      spdlog::warn("leader election: {}: {}", lease, acquired.status().message());
    } else if (std::string holder = ObservedHolder(); holder != last_holder) {
      spdlog::info("leader election: {} is held by {}; waiting", lease, holder);
      last_holder = holder;
    }
    if (cancel.WaitFor(config_.retry_period)) return;
  }
  if (cancel.cancelled()) return;
  spdlog::info("leader election: {} acquired by {}", lease, config_.identity);
  on_started_leading();

  // Lead: renew every retry period; give up once renewals have failed for renew_deadline.
  absl::Time last_renewed = clock_.Now();
  while (!cancel.WaitFor(config_.retry_period)) {
    absl::StatusOr<bool> renewed = TryAcquireOrRenew();
    if (renewed.ok() && *renewed) {
      last_renewed = clock_.Now();
      continue;
    }
    if (!renewed.ok()) {
      spdlog::warn("leader election: renewing {}: {}", lease, renewed.status().message());
    }
    // Someone else holds it now: stop at once. Otherwise keep trying until the deadline.
    const bool taken = renewed.ok() && !*renewed && ObservedHolder() != config_.identity;
    if (taken || clock_.Now() - last_renewed >= config_.renew_deadline) {
      leading_.store(false, std::memory_order_release);
      spdlog::error("leader election: lost {} (held now by \"{}\"); stopping", lease,
                    ObservedHolder());
      on_stopped_leading();
      return;
    }
  }
  if (absl::Status status = Release(); !status.ok()) {
    spdlog::warn("leader election: {}", status.message());
  } else {
    spdlog::info("leader election: released {}", lease);
  }
  on_stopped_leading();
}

}  // namespace kmm::kube
