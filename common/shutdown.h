// Turns SIGTERM and SIGINT into a clean shutdown request that any thread can wait on.
//
// Create one ShutdownSignal in main() before starting any other thread: it blocks the
// signals in the calling thread (threads started later inherit that mask) and a watcher
// thread receives them through a signalfd, so no code runs in signal-handler context.
// Thread-safe: Wait*, Requested and RequestShutdown may be called from any thread.
#ifndef KMM_COMMON_SHUTDOWN_H_
#define KMM_COMMON_SHUTDOWN_H_

#include <signal.h>

#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kmm {

class ShutdownSignal {
 public:
  // Blocks SIGTERM and SIGINT in the calling thread and starts watching for them.
  static absl::StatusOr<std::unique_ptr<ShutdownSignal>> Install();

  // Stops the watcher and restores the calling thread's previous signal mask.
  ~ShutdownSignal();
  ShutdownSignal(const ShutdownSignal&) = delete;
  ShutdownSignal& operator=(const ShutdownSignal&) = delete;

  // Blocks until a signal arrives or RequestShutdown() is called.
  void Wait() const;
  // As Wait(), for at most `timeout`; true when shutdown was requested.
  bool WaitFor(absl::Duration timeout) const;
  bool Requested() const;

  // Requests shutdown from inside the program (e.g. a fatal error in a worker).
  void RequestShutdown();

  // The signal that requested shutdown, or 0 when none (yet, or it came from code).
  int signal_number() const;

 private:
  ShutdownSignal(int signal_fd, int wake_fd, const sigset_t& previous_mask);
  void WatchLoop();
  void Request(int signal_number);

  const int signal_fd_;
  const int wake_fd_;  // eventfd that stops the watcher on destruction
  const sigset_t previous_mask_;
  mutable absl::Mutex mu_;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  int signal_number_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread watcher_;
};

}  // namespace kmm

#endif  // KMM_COMMON_SHUTDOWN_H_
