#include "operator/kube/controller.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "common/status.h"
#include "spdlog/spdlog.h"

namespace kmm::kube {

bool IsTerminalError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kFailedPrecondition;
}

Controller::Controller(std::string name, WorkQueue& queue, Reconciler& reconciler,
                       ControllerMetrics* metrics, int workers)
    : name_(std::move(name)),
      queue_(queue),
      reconciler_(reconciler),
      metrics_(metrics),
      worker_count_(std::max(workers, 1)) {
  if (metrics_ == nullptr) return;
  // Every series of this controller exists from the start, at zero, so that rate() and
  // alerts have a first sample.
  series_.success = &metrics_->reconcile_total.WithLabels({name_, "success"});
  series_.error = &metrics_->reconcile_total.WithLabels({name_, "error"});
  series_.requeue = &metrics_->reconcile_total.WithLabels({name_, "requeue"});
  series_.requeue_after = &metrics_->reconcile_total.WithLabels({name_, "requeue_after"});
  series_.errors = &metrics_->reconcile_errors_total.WithLabels({name_});
  series_.duration = &metrics_->reconcile_duration_seconds.WithLabels({name_});
  queue_.ReportDepthTo(&metrics_->workqueue_depth.WithLabels({name_}));
}

Controller::~Controller() { Stop(); }

void Controller::Start() {
  if (stopping_.load() || !workers_.empty()) return;
  spdlog::info("controller {}: starting {} worker(s)", name_, worker_count_);
  workers_.reserve(static_cast<size_t>(worker_count_));
  for (int i = 0; i < worker_count_; ++i) workers_.emplace_back([this] { Work(); });
  started_.store(true);
}

void Controller::Stop() {
  if (stopping_.exchange(true)) return;
  queue_.ShutDown();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  if (metrics_ != nullptr) queue_.ReportDepthTo(nullptr);
  spdlog::info("controller {}: stopped", name_);
}

void Controller::Work() {
  while (std::optional<std::string> key = queue_.Get()) {
    if (!stopping_.load()) Process(*key);
    queue_.Done(*key);
  }
  ++workers_exited_;
}

absl::Status Controller::Liveness(absl::Duration stuck_after) const {
  if (!started_.load() || stopping_.load()) return absl::OkStatus();
  if (const int exited = workers_exited_.load(); exited > 0) {
    return absl::UnavailableError(
        fmt::format("controller {}: {} of {} workers have exited", name_, exited, worker_count_));
  }
  const absl::Time now = queue_.clock().Now();
  absl::MutexLock lock(&busy_mu_);
  for (const auto& [key, start] : busy_) {
    if (now - start > stuck_after) {
      return absl::UnavailableError(
          fmt::format("controller {}: a worker has been reconciling {} for {}", name_, key,
                      absl::FormatDuration(absl::Trunc(now - start, absl::Seconds(1)))));
    }
  }
  return absl::OkStatus();
}

void Controller::Process(const std::string& key) {
  Clock& clock = queue_.clock();
  const absl::Time start = clock.Now();
  {
    absl::MutexLock lock(&busy_mu_);
    busy_[key] = start;
  }
  const absl::StatusOr<Result> result = ReconcileCatchingExceptions(key);
  {
    absl::MutexLock lock(&busy_mu_);
    busy_.erase(key);
  }
  const absl::Duration took = clock.Now() - start;

  // The queue first, the metrics after: a metric that moved means the key is scheduled.
  Counter* outcome = nullptr;
  if (!result.ok()) {
    if (IsTerminalError(result.status())) {
      spdlog::error("controller {}: reconcile of {} failed and will not be retried: {}", name_, key,
                    result.status());
      queue_.Forget(key);
    } else {
      spdlog::error("controller {}: reconcile of {} failed (attempt {}), will retry: {}", name_,
                    key, queue_.NumRequeues(key) + 1, result.status());
      queue_.AddRateLimited(key);
    }
    Inc(series_.errors);
    outcome = series_.error;
  } else if (result->requeue_after > absl::ZeroDuration()) {
    queue_.Forget(key);
    queue_.AddAfter(key, result->requeue_after);
    outcome = series_.requeue_after;
  } else if (result->requeue) {
    queue_.AddRateLimited(key);
    outcome = series_.requeue;
  } else {
    queue_.Forget(key);
    outcome = series_.success;
  }
  if (series_.duration != nullptr) series_.duration->Observe(absl::ToDoubleSeconds(took));
  Inc(outcome);
}

absl::StatusOr<Result> Controller::ReconcileCatchingExceptions(const std::string& key) {
  // A reconciler is our code and returns Status, but a library inside it may throw (JSON
  // access, allocation); one bad object must not take the whole operator down.
  try {
    return reconciler_.Reconcile(key);
  } catch (const std::exception& e) {
    return absl::InternalError(fmt::format("reconciler threw: {}", e.what()));
  } catch (...) {
    return absl::InternalError("reconciler threw a non-standard exception");
  }
}

}  // namespace kmm::kube
