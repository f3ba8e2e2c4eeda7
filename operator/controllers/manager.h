// Wires the operator together: the caches, a work queue and controller per reconciler, the
// event handlers that turn cache changes into keys (level-based: handlers enqueue keys, never
// payloads), and readiness. kmm-operator's main creates one; with leader election, the
// caches run on every replica and the controllers only on the leader.
#ifndef KMM_OPERATOR_CONTROLLERS_MANAGER_H_
#define KMM_OPERATOR_CONTROLLERS_MANAGER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "operator/controllers/caches.h"
#include "operator/controllers/module_reconciler.h"
#include "operator/desired/settings.h"
#include "operator/kube/cancellation.h"
#include "operator/kube/controller.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/informer.h"
#include "operator/kube/metrics.h"
#include "operator/kube/work_queue.h"

namespace kmm::controllers {

struct ManagerOptions {
  std::vector<std::string> watch_namespaces;  // empty: every namespace
  int workers = 8;
  desired::OperatorSettings settings;
  std::string identity = "kmm-operator";  // events' reportingInstance
  // Changes to a Module's pods, DaemonSets or to nodes wait this long before its reconcile,
  // so a burst of them (5,000 pods starting, a node-label sweep) costs one reconcile per
  // Module per interval instead of one per event. A change to the Module itself is at once.
  absl::Duration batch_owned_changes = absl::Seconds(1);
  // How often freed heap pages go back to the kernel (malloc_trim); zero: never. Lists and
  // watch bursts parse whole objects and keep trimmed copies, which leaves the heap full of
  // free holes that glibc would otherwise keep mapped for good.
  absl::Duration release_memory_every = absl::Seconds(30);
};

class Manager {
 public:
  Manager(kube::KubeClient& client, ManagerOptions options, kube::Registry& registry);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Starts the informers; returns at once.
  void StartCaches();
  bool CachesSynced() const { return caches_.Synced(); }
  // /healthz: every informer's loop is alive and, once started, every controller's work loop
  // (kube::Informer::Liveness, kube::Controller::Liveness). A reconcile running longer than
  // `stuck_after` counts as a stuck work loop.
  absl::Status Liveness(absl::Duration stuck_after = absl::Minutes(10)) const;
  // Waits for the caches, then starts the controllers (on the leader).
  bool StartControllers(const kube::Cancellation& cancel, absl::Duration sync_timeout);
  // Stops controllers and informers; idempotent.
  void Stop();

 private:
  void EnqueueAllModules();
  void EnqueueOwner(const kube::ObjectPtr& object);
  // The Modules whose builds read this ConfigMap (build.dockerfileConfigMap).
  void EnqueueBuildsOf(const kube::ObjectPtr& config_map);

  kube::KubeClient& client_;
  const ManagerOptions options_;
  kube::ClientMetrics client_metrics_;
  kube::ControllerMetrics controller_metrics_;
  Caches caches_;
  kube::EventRecorder events_;
  kube::WorkQueue module_queue_;
  kube::WorkQueue node_queue_;
  ModuleReconciler module_reconciler_;
  NodeKernelLabelReconciler node_reconciler_;
  std::unique_ptr<kube::Controller> module_controller_;
  std::unique_ptr<kube::Controller> node_controller_;
  std::atomic<bool> controllers_started_{false};  // the two above are set, for Liveness
  kube::FunctionEventHandler module_handler_, node_handler_, owned_handler_, config_map_handler_;
  kube::Cancellation stop_caches_;
  std::vector<std::thread> informer_threads_;  // and the memory releaser
};

}  // namespace kmm::controllers

#endif  // KMM_OPERATOR_CONTROLLERS_MANAGER_H_
