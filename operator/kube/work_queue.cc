#include "operator/kube/work_queue.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace kmm::kube {

RateLimiter::RateLimiter(Clock& clock, RateLimiterOptions options)
    : clock_(clock), options_(options), tokens_(options.burst), refilled_at_(clock.Now()) {}

absl::Duration RateLimiter::When(std::string_view key) {
  absl::MutexLock lock(&mu_);
  const int failures = failures_[std::string(key)]++;
  // In floating point so that a long run of failures saturates instead of overflowing.
  const double backoff_ns =
      std::ldexp(absl::ToDoubleNanoseconds(options_.base_delay), std::min(failures, 1100));
  const absl::Duration backoff = backoff_ns >= absl::ToDoubleNanoseconds(options_.max_delay)
                                     ? options_.max_delay
                                     : absl::Nanoseconds(static_cast<int64_t>(backoff_ns));
  return std::max(backoff, ReserveToken());
}

absl::Duration RateLimiter::ReserveToken() {
  const absl::Time now = clock_.Now();
  if (now > refilled_at_) {
    tokens_ = std::min<double>(options_.burst,
                               tokens_ + absl::ToDoubleSeconds(now - refilled_at_) * options_.qps);
    refilled_at_ = now;
  }
  tokens_ -= 1;
  if (tokens_ >= 0) return absl::ZeroDuration();
  // To the microsecond, so that float noise does not turn 100 ms into 99.999999 ms.
  return absl::Microseconds(std::llround(-tokens_ / options_.qps * 1e6));
}

void RateLimiter::Forget(std::string_view key) {
  absl::MutexLock lock(&mu_);
  failures_.erase(std::string(key));
}

int RateLimiter::NumRequeues(std::string_view key) const {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(std::string(key));
  return it == failures_.end() ? 0 : it->second;
}

WorkQueue::WorkQueue(Clock& clock, RateLimiterOptions rate_limits)
    : clock_(clock), rate_limiter_(clock, rate_limits) {}

void WorkQueue::Add(std::string_view key) {
  absl::MutexLock lock(&mu_);
  AddLocked(std::string(key));
}

void WorkQueue::AddLocked(std::string key) {
  if (shutting_down_) return;
  if (!dirty_.insert(key).second) return;  // already waiting
  // Being processed: Done queues it again, so that no two workers hold it at once.
  if (processing_.contains(key)) return;
  queue_.push_back(std::move(key));
  UpdateDepthLocked();
  key_available_.Signal();
}

void WorkQueue::AddAfter(std::string_view key, absl::Duration delay) {
  if (delay <= absl::ZeroDuration()) {
    Add(key);
    return;
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  const absl::Time due = clock_.Now() + delay;
  auto [it, inserted] = delayed_until_.try_emplace(std::string(key), due);
  if (!inserted) {
    if (it->second <= due) return;
    delayed_.erase({it->second, it->first});
    it->second = due;
  }
  delayed_.emplace(due, it->first);
  // Getters sleeping until a later due time must wake for this one.
  if (delayed_.begin()->first == due) key_available_.SignalAll();
}

void WorkQueue::AddRateLimited(std::string_view key) {
  if (ShuttingDown()) return;
  AddAfter(key, rate_limiter_.When(key));
}

void WorkQueue::Forget(std::string_view key) { rate_limiter_.Forget(key); }

int WorkQueue::NumRequeues(std::string_view key) const { return rate_limiter_.NumRequeues(key); }

std::optional<std::string> WorkQueue::Get() {
  absl::MutexLock lock(&mu_);
  while (true) {
    PromoteDueLocked();
    if (!queue_.empty()) break;
    if (shutting_down_) return std::nullopt;
    if (delayed_.empty()) {
      key_available_.Wait(&mu_);
    } else {
      key_available_.WaitWithTimeout(&mu_, delayed_.begin()->first - clock_.Now());
    }
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  UpdateDepthLocked();
  dirty_.erase(key);
  processing_.insert(key);
  return key;
}

void WorkQueue::Done(std::string_view key_view) {
  absl::MutexLock lock(&mu_);
  std::string key(key_view);
  processing_.erase(key);
  if (dirty_.contains(key)) {
    queue_.push_back(std::move(key));
    UpdateDepthLocked();
    key_available_.Signal();
  }
  if (processing_.empty()) idle_.SignalAll();
}

size_t WorkQueue::Len() {
  absl::MutexLock lock(&mu_);
  PromoteDueLocked();
  return queue_.size();
}

void WorkQueue::ShutDown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  delayed_.clear();
  delayed_until_.clear();
  key_available_.SignalAll();
}

void WorkQueue::ShutDownWithDrain() {
  ShutDown();
  absl::MutexLock lock(&mu_);
  while (!processing_.empty()) idle_.Wait(&mu_);
}

bool WorkQueue::ShuttingDown() const {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

void WorkQueue::ClockAdvanced() {
  absl::MutexLock lock(&mu_);
  PromoteDueLocked();
  key_available_.SignalAll();
}

void WorkQueue::ReportDepthTo(Gauge* gauge) {
  absl::MutexLock lock(&mu_);
  depth_ = gauge;
  UpdateDepthLocked();
}

void WorkQueue::PromoteDueLocked() {
  if (delayed_.empty()) return;
  const absl::Time now = clock_.Now();
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    auto node = delayed_.extract(delayed_.begin());
    delayed_until_.erase(node.value().second);
    AddLocked(std::move(node.value().second));
  }
}

void WorkQueue::UpdateDepthLocked() {
  if (depth_ != nullptr) depth_->Set(static_cast<double>(queue_.size()));
}

}  // namespace kmm::kube
