// Reconciles one Module (key "namespace/name") by level (docs/design.md §7.6): from the caches it
// computes the loader DaemonSets per kernel and the third-party plugin DaemonSet, creates or
// updates what differs (server-side apply), deletes what is no longer wanted, replaces
// outdated loader pods node by node (their `.ready` node label goes first), keeps the
// `.ready` labels in step with ready loader pods, and writes status and events. A finalizer
// keeps a deleted Module until every loader pod — and with it every loaded module — is gone.
#ifndef KMM_OPERATOR_CONTROLLERS_MODULE_RECONCILER_H_
#define KMM_OPERATOR_CONTROLLERS_MODULE_RECONCILER_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "operator/api/module.h"
#include "operator/controllers/caches.h"
#include "operator/controllers/image_pipeline.h"
#include "operator/desired/module_status.h"
#include "operator/desired/plan.h"
#include "operator/desired/settings.h"
#include "operator/kube/controller.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/kube_client.h"
#include "operator/registry/registry_client.h"

namespace kmm::controllers {

inline constexpr std::string_view kFieldManager = "kmm-operator";

class ModuleReconciler final : public kube::Reconciler {
 public:
  // `registry` answers whether module images exist for in-cluster builds (null: a client
  // of the reconciler's own).
  ModuleReconciler(kube::KubeClient& client, Caches& caches, kube::EventRecorder& events,
                   desired::OperatorSettings settings, Clock& clock = RealClock(),
                   registry::RegistryClient* registry = nullptr);

  // The named steps, in order: observe, plan (desired::PlanFor), apply the plan, look at the
  // loader pods (confirming unloads), collect garbage, replace outdated pods, move nodes
  // between versions, set the node labels, then status = desired::ModuleStatusFor(plan,
  // rollout). Each step returns early only on an API error; the next reconcile resumes.
  absl::StatusOr<kube::Result> Reconcile(const std::string& key) override;

 private:
  struct Observed;  // what the caches say about one Module's objects
  struct Applied;   // the DaemonSets the plan wants, and older ones still in use
  struct Rollout;   // what the loader pods say, and what is being done about it

  Observed Observe(const api::Module& module);
  void ReportPlanProblems(const nlohmann::json& object, const desired::ModulePlan& plan);
  // A kernel whose image is built or signed in the cluster gets its loader DaemonSet once
  // the image is ready (ImagePipeline); until then the loaders already there stay as they are.
  absl::StatusOr<Applied> ApplyPlan(const api::Module& module, const nlohmann::json& object,
                                    const desired::ModulePlan& plan, const Observed& observed);
  absl::StatusOr<Rollout> ObserveRollout(const api::Module& module, const nlohmann::json& object,
                                         const Observed& observed, const Applied& applied);
  // Deletes the DaemonSets the plan no longer wants, once their nodes are drained.
  absl::Status CollectGarbage(const api::Module& module, const nlohmann::json& object,
                              const desired::ModulePlan& plan, const Observed& observed,
                              const Applied& applied, Rollout* rollout);
  // Outdated loader pods: the unready ones at once, the ready ones one node at a time.
  absl::Status ReplaceOutdatedPods(const api::Module& module, const nlohmann::json& object,
                                   const desired::ModulePlan& plan, const Observed& observed,
                                   Rollout* rollout);
  // Ordered upgrade: moves each node whose requested version (desired::ModuleVersionLabel)
  // differs from what runs there: plugin out, old loader out (unload confirmed), new loader in.
  absl::Status MoveNodeVersions(const api::Module& module, const nlohmann::json& object,
                                const desired::ModulePlan& plan, const Observed& observed,
                                Rollout* rollout);
  // The `.ready` and `.device-plugin-ready` labels follow the ready pods.
  absl::Status SetNodeLabels(const api::Module& module, const desired::ModulePlan& plan,
                             const Observed& observed, const Rollout& rollout);
  // How long ago the operator replaced the node's Ready loader pod (desired::ModuleUpdatingLabel),
  // or infinity when it did not.
  absl::Duration UpdatingSince(const Observed& observed, const api::Module& module,
                               const std::string& node);
  desired::RolloutState Summarize(const Observed& observed, const Applied& applied,
                                  const Rollout& rollout);
  // Before a loader pod on `node` goes: removes the node's ready labels and reports whether
  // its third-party device plugin pod is gone (or has overrun its stop deadline, reported
  // with an event), so no plugin holds a device of a module being unloaded.
  absl::StatusOr<bool> DrainNode(const api::Module& module, const nlohmann::json& object,
                                 const Observed& observed, const std::string& node);

  absl::StatusOr<kube::Result> ReportInvalid(const nlohmann::json& object,
                                             const std::string& problem);
  absl::StatusOr<kube::Result> Finalize(const api::Module& module, const nlohmann::json& object);
  absl::Status EnsureFinalizer(const api::Module& module);
  // Server-side applies the object unless the cached one already carries its hash; returns
  // the hash.
  absl::StatusOr<std::string> ApplyIfChanged(const nlohmann::json& desired_object);
  struct BuiltDaemonSet {
    std::string name;
    std::string desired_hash;
    std::string kernel_hash;
    std::string template_hash;
  };
  std::optional<BuiltDaemonSet> Remembered(const std::string& key);
  void Remember(const std::string& key, BuiltDaemonSet built);
  // Sets (to `value`) or removes a label on a node; events when the ready label changes.
  absl::Status SetNodeLabel(const std::string& node, const std::string& label, bool present,
                            const api::Module& module, const std::string& value = "");
  absl::Status WriteStatus(const nlohmann::json& object, const nlohmann::json& status);
  // The unload confirmation step. Loader pods carry desired::kUnloadFinalizer, so a stopped
  // loader pod stays with its exit code and message. Its finalizer goes once the unload is
  // confirmed: the loader exited 0, the retry pod (desired/unload_pod.h) started after a
  // failed unload succeeded, or the node is gone. Returns the nodes still unloading or
  // blocked.
  absl::StatusOr<std::vector<desired::NodeProblem>> ConfirmUnloads(
      const api::Module& module, const nlohmann::json& object,
      const std::vector<kube::ObjectPtr>& loader_pods);
  absl::Status RemoveUnloadFinalizer(const nlohmann::json& pod);

  kube::KubeClient& client_;
  Caches& caches_;
  kube::EventRecorder& events_;
  const desired::OperatorSettings settings_;
  Clock& clock_;
  std::unique_ptr<registry::RegistryClient> own_registry_;
  ImagePipeline images_;
  absl::Mutex memo_mu_;
  absl::flat_hash_map<std::string, BuiltDaemonSet> memo_ ABSL_GUARDED_BY(memo_mu_);
};

// Keeps kmm.node.kubernetes.io/kernel-version.full on every Node equal to its kernel.
class NodeKernelLabelReconciler final : public kube::Reconciler {
 public:
  NodeKernelLabelReconciler(kube::KubeClient& client, Caches& caches)
      : client_(client), caches_(caches) {}
  absl::StatusOr<kube::Result> Reconcile(const std::string& key) override;

 private:
  kube::KubeClient& client_;
  Caches& caches_;
};

}  // namespace kmm::controllers

#endif  // KMM_OPERATOR_CONTROLLERS_MODULE_RECONCILER_H_
