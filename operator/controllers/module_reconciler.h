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
#include "operator/api/module.h"
#include "operator/controllers/caches.h"
#include "operator/desired/settings.h"
#include "operator/kube/controller.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/kube_client.h"

namespace kmm::controllers {

inline constexpr std::string_view kFieldManager = "kmm-operator";

class ModuleReconciler final : public kube::Reconciler {
 public:
  ModuleReconciler(kube::KubeClient& client, Caches& caches, kube::EventRecorder& events,
                   desired::OperatorSettings settings);

  absl::StatusOr<kube::Result> Reconcile(const std::string& key) override;

 private:
  struct Observed;  // what the caches say about one Module's objects

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
  // Sets (value) or removes (nullopt) a label on a node; events on change.
  absl::Status SetNodeLabel(const std::string& node, const std::string& label, bool present,
                            const api::Module& module);
  absl::Status WriteStatus(const nlohmann::json& object, const nlohmann::json& status);
  // The unload confirmation step. Loader pods carry desired::kUnloadFinalizer, so a stopped
  // loader pod stays with its exit code and message. Its finalizer goes once the unload is
  // confirmed: the loader exited 0, the retry pod (desired/unload_pod.h) started after a
  // failed unload succeeded, or the node is gone. Returns the nodes still unloading or
  // blocked, as status.nodes entries.
  absl::StatusOr<nlohmann::json> ConfirmUnloads(const api::Module& module,
                                                const nlohmann::json& object,
                                                const std::vector<kube::ObjectPtr>& loader_pods);
  absl::Status RemoveUnloadFinalizer(const nlohmann::json& pod);

  kube::KubeClient& client_;
  Caches& caches_;
  kube::EventRecorder& events_;
  const desired::OperatorSettings settings_;
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
