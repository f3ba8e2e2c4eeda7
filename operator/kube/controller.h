// Runs a Reconciler over the keys of a WorkQueue with a pool of worker threads, after
// controller-runtime: reconcile by level, keyed by "namespace/name"; a failure is retried
// with the queue's per-key backoff, a terminal failure is reported and left until the next
// change of the object. The operator's main wires one Controller per reconciler.
#ifndef KMM_OPERATOR_KUBE_CONTROLLER_H_
#define KMM_OPERATOR_KUBE_CONTROLLER_H_

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "operator/kube/metrics.h"
#include "operator/kube/work_queue.h"

namespace kmm::kube {

struct Result {
  // Reconcile again after the key's rate-limited backoff.
  bool requeue = false;
  // Reconcile again after this long (wins over `requeue`); resets the key's backoff.
  absl::Duration requeue_after = absl::ZeroDuration();
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  // Brings the cluster in line with the object named `key` as it is now. Called for one key
  // by one worker at a time; different keys run concurrently.
  virtual absl::StatusOr<Result> Reconcile(const std::string& key) = 0;
};

// An error that retrying cannot fix: InvalidArgument (the object itself is wrong) or
// FailedPrecondition (the cluster lacks something the object needs, e.g. a kernel mapping
// for a node's kernel). Only a change to the object or the cluster helps, and that change
// arrives as a new event for the key, so the controller reports these and does not retry.
bool IsTerminalError(const absl::Status& status);

class Controller {
 public:
  // `queue`, `reconciler` and `metrics` (optional) must outlive the controller. Reconcile
  // durations are measured on the queue's clock; the queue's depth is reported as
  // kmm_workqueue_depth{name=<name>}.
  Controller(std::string name, WorkQueue& queue, Reconciler& reconciler, ControllerMetrics* metrics,
             int workers = 1);
  // Stops the controller.
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the worker threads. Call once; Start and Stop are for one thread (main's).
  void Start();
  // Shuts the queue down, lets reconciles in flight finish, and joins the workers. Keys
  // still queued are dropped: after a restart the informers' initial list brings every
  // object back. Idempotent.
  void Stop();

  const std::string& name() const { return name_; }

  // Whether the work loop is alive: every worker started runs, and none has been inside one
  // reconcile for longer than `stuck_after` (on the queue's clock). The message names the
  // key a stuck worker holds. OK before Start (a standby replica runs no controllers).
  absl::Status Liveness(absl::Duration stuck_after) const;

 private:
  void Work();
  void Process(const std::string& key);
  absl::StatusOr<Result> ReconcileCatchingExceptions(const std::string& key);

  // This controller's series, looked up once; all null without metrics.
  struct Series {
    Counter* success = nullptr;
    Counter* error = nullptr;
    Counter* requeue = nullptr;
    Counter* requeue_after = nullptr;
    Counter* errors = nullptr;
    Histogram* duration = nullptr;
  };
  static void Inc(Counter* counter) {
    if (counter != nullptr) counter->Inc();
  }

  const std::string name_;
  WorkQueue& queue_;
  Reconciler& reconciler_;
  ControllerMetrics* const metrics_;
  Series series_;
  const int worker_count_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};
  std::atomic<int> workers_exited_{0};  // before Stop: a fault
  mutable absl::Mutex busy_mu_;
  // The reconciles in flight: key -> when it started.
  std::map<std::string, absl::Time> busy_ ABSL_GUARDED_BY(busy_mu_);
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_CONTROLLER_H_
