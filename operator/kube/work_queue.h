// The controllers' work queue of object keys ("namespace/name"), after client-go's
// workqueue: a key waiting is queued once however often it is added, a key is never handed
// to two workers at once, and failed keys come back after a per-key exponential backoff
// bounded by an overall rate limit. Informer event handlers Add; Controller workers Get,
// reconcile and Done. Thread-safe.
#ifndef KMM_OPERATOR_KUBE_WORK_QUEUE_H_
#define KMM_OPERATOR_KUBE_WORK_QUEUE_H_

#include <cstddef>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "operator/kube/metrics.h"

namespace kmm::kube {

// client-go's DefaultControllerRateLimiter: per key, base_delay doubling with every failure
// up to max_delay; overall, a token bucket of `burst` tokens refilled at `qps`.
struct RateLimiterOptions {
  absl::Duration base_delay = absl::Milliseconds(5);
  absl::Duration max_delay = absl::Seconds(1000);
  double qps = 10;
  int burst = 100;
};

// How long a key that failed should wait before its next attempt: the larger of its own
// exponential backoff and the wait for a token from the shared bucket. Thread-safe.
class RateLimiter {
 public:
  explicit RateLimiter(Clock& clock, RateLimiterOptions options = {});

  // Counts one more failure of `key` and returns how long it should wait.
  absl::Duration When(std::string_view key);
  // Starts `key`'s backoff from the beginning (after a success). The bucket is shared and
  // does not forget.
  void Forget(std::string_view key);
  // Failures counted for `key` since it was last forgotten.
  int NumRequeues(std::string_view key) const;

 private:
  absl::Duration ReserveToken() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock& clock_;
  const RateLimiterOptions options_;
  mutable absl::Mutex mu_;
  std::unordered_map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  double tokens_ ABSL_GUARDED_BY(mu_);  // negative: reserved ahead of the refill
  absl::Time refilled_at_ ABSL_GUARDED_BY(mu_);
};

class WorkQueue {
 public:
  // Delays are measured on `clock`. With a FakeClock, call ClockAdvanced() after moving it.
  explicit WorkQueue(Clock& clock = RealClock(), RateLimiterOptions rate_limits = {});
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `key` unless it is already waiting. A key being processed is queued again when
  // its worker calls Done. Ignored once shutting down.
  void Add(std::string_view key);
  // Adds `key` once `delay` has passed on the clock; an earlier pending time for the same
  // key wins. A delay <= 0 adds at once.
  void AddAfter(std::string_view key, absl::Duration delay);
  // Adds `key` after its rate limiter delay (see RateLimiter::When).
  void AddRateLimited(std::string_view key);
  // Resets `key`'s backoff; call after a successful reconcile.
  void Forget(std::string_view key);
  int NumRequeues(std::string_view key) const;

  // Blocks until a key is available and hands it out; the caller must call Done(key) when
  // finished with it. Returns nullopt once shutting down and no key is left.
  std::optional<std::string> Get();
  void Done(std::string_view key);

  // Keys ready to be handed out (not those still delayed, nor those being processed).
  size_t Len();

  // Stops accepting adds and drops delayed keys; keys already queued are still handed out,
  // then Get returns nullopt.
  void ShutDown();
  // ShutDown, then waits until every key handed out so far is Done.
  void ShutDownWithDrain();
  bool ShuttingDown() const;

  // Makes blocked Get()s look at the clock again, so keys whose delay has passed are handed
  // out. Only a FakeClock needs this: with the real clock Get wakes at the due time itself.
  void ClockAdvanced();

  // Keeps `gauge` equal to Len(); nullptr stops it.
  void ReportDepthTo(Gauge* gauge);

  Clock& clock() const { return clock_; }

 private:
  void AddLocked(std::string key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PromoteDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateDepthLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock& clock_;
  RateLimiter rate_limiter_;
  mutable absl::Mutex mu_;
  absl::CondVar key_available_;  // a key was queued or became due, or shutting down
  absl::CondVar idle_;           // the last key being processed is Done
  // Keys in hand-out order; each is also in dirty_.
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  // Keys that need processing: queued, or being processed and added again meanwhile.
  std::unordered_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  std::unordered_set<std::string> processing_ ABSL_GUARDED_BY(mu_);
  // Delayed keys, by due time and by key (one entry per key: the earliest).
  std::set<std::pair<absl::Time, std::string>> delayed_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, absl::Time> delayed_until_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  Gauge* depth_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_WORK_QUEUE_H_
