// A stop signal shared by the operator's long-running loops (watches, informers, leader
// election): Cancel() wakes every waiter at once and runs registered wake-ups (e.g. one that
// interrupts a blocked libcurl transfer). Thread-safe.
#ifndef KMM_OPERATOR_KUBE_CANCELLATION_H_
#define KMM_OPERATOR_KUBE_CANCELLATION_H_

#include <functional>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kmm::kube {

class Cancellation {
 public:
  Cancellation() = default;
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  void Cancel() {
    // Wake-ups run under callbacks_mu_ so that Remove() returning means its callback is not
    // running and never will: the caller may then free what the callback touches.
    absl::MutexLock callbacks_lock(&callbacks_mu_);
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
    }
    for (auto& [id, wake] : callbacks_) wake();
  }

  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

  // Sleeps for `timeout` of wall time unless cancelled first; returns true when cancelled.
  bool WaitFor(absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&cancelled_), timeout);
    return cancelled_;
  }

  // Runs `wake` on Cancel() (at once if already cancelled). Returns an id for Remove().
  int OnCancel(std::function<void()> wake) const {
    {
      absl::MutexLock callbacks_lock(&callbacks_mu_);
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        callbacks_[next_id_] = std::move(wake);
        return next_id_++;
      }
    }
    wake();
    return -1;
  }
  void Remove(int id) const {
    absl::MutexLock callbacks_lock(&callbacks_mu_);
    callbacks_.erase(id);
  }

 private:
  // Registrations are mutable: adding a wake-up does not change whether we are cancelled.
  mutable absl::Mutex callbacks_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable std::map<int, std::function<void()>> callbacks_ ABSL_GUARDED_BY(callbacks_mu_);
  mutable int next_id_ ABSL_GUARDED_BY(callbacks_mu_) = 0;
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_CANCELLATION_H_
