// The operator's informers (docs/design.md §7.7: narrow watches, trimmed objects): Modules;
// Nodes trimmed to labels, taints and kernel; DaemonSets, Pods and Jobs that carry our
// managed-by label; ConfigMaps trimmed to a hash of each key (the build contexts of in-cluster
// builds). Controllers read these caches and never list from the API server.
#ifndef KMM_OPERATOR_CONTROLLERS_CACHES_H_
#define KMM_OPERATOR_CONTROLLERS_CACHES_H_

#include <memory>
#include <string>
#include <vector>

#include "operator/kube/informer.h"
#include "operator/kube/kube_client.h"
#include "operator/kube/metrics.h"

namespace kmm::controllers {

// One kind of object watched in several namespaces (one informer each), read as one cache.
class NamespacedCache {
 public:
  NamespacedCache(kube::KubeClient& client, const std::vector<std::string>& namespaces,
                  const kube::InformerOptions& options);
  void AddEventHandler(kube::ResourceEventHandler* handler);
  kube::ObjectPtr Get(std::string_view key) const;  // "namespace/name"
  std::vector<kube::ObjectPtr> List() const;
  // The objects a Module owns (see ModuleIndexOf), without scanning the cache.
  std::vector<kube::ObjectPtr> ListOwnedBy(std::string_view ns, std::string_view module) const;
  size_t Size() const;
  bool HasSynced() const;
  const std::vector<std::unique_ptr<kube::Informer>>& informers() const { return informers_; }

 private:
  std::vector<std::unique_ptr<kube::Informer>> informers_;
};

struct Caches {
  // `namespaces`: where to watch Modules and our DaemonSets and Pods; empty: everywhere.
  Caches(kube::KubeClient& client, const std::vector<std::string>& namespaces,
         kube::ClientMetrics* metrics);

  NamespacedCache modules;
  kube::Informer nodes;
  NamespacedCache daemonsets;
  NamespacedCache pods;
  NamespacedCache jobs;
  NamespacedCache configmaps;

  std::vector<kube::Informer*> all();
  bool Synced() const {
    return modules.HasSynced() && nodes.HasSynced() && daemonsets.HasSynced() && pods.HasSynced() &&
           jobs.HasSynced() && configmaps.HasSynced();
  }
};

// The index of DaemonSets and Pods: "namespace/module" from the module-name label, or empty.
std::string ModuleIndexOf(const nlohmann::json& object);

// The informer transforms, exposed for tests.
nlohmann::json TrimNode(nlohmann::json node);
nlohmann::json TrimPod(nlohmann::json pod);
nlohmann::json TrimDaemonSet(nlohmann::json daemonset);
nlohmann::json TrimJob(nlohmann::json job);
// A ConfigMap as a build needs it: each key of `data` and `binaryData` with a hash of its
// value (desired::InputsHash) in place of the value, so a changed file changes the build's
// inputs hash while the cache holds no contents.
nlohmann::json TrimConfigMap(nlohmann::json config_map);

}  // namespace kmm::controllers

#endif  // KMM_OPERATOR_CONTROLLERS_CACHES_H_
