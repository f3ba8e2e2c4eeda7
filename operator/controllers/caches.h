// The operator's informers (STYLE.md item 7: narrow watches, trimmed objects): Modules;
// Nodes trimmed to labels, taints and kernel; DaemonSets and Pods that carry our managed-by
// label. Controllers read these caches and never list from the API server.
#ifndef KMM_OPERATOR_CONTROLLERS_CACHES_H_
#define KMM_OPERATOR_CONTROLLERS_CACHES_H_

#include <memory>
#include <string>
#include <vector>

#include "operator/kube/informer.h"
#include "operator/kube/kube_client.h"
#include "operator/kube/metrics.h"

namespace kmm::controllers {

struct Caches {
  // `ns`: the namespace to watch Modules (and our DaemonSets and Pods) in; empty: all.
  Caches(kube::KubeClient& client, const std::string& ns, kube::ClientMetrics* metrics);

  kube::Informer modules;
  kube::Informer nodes;
  kube::Informer daemonsets;
  kube::Informer pods;

  std::vector<kube::Informer*> all() { return {&modules, &nodes, &daemonsets, &pods}; }
  bool Synced() const {
    return modules.HasSynced() && nodes.HasSynced() && daemonsets.HasSynced() && pods.HasSynced();
  }
};

// The informer transforms, exposed for tests.
nlohmann::json TrimNode(nlohmann::json node);
nlohmann::json TrimPod(nlohmann::json pod);
nlohmann::json TrimDaemonSet(nlohmann::json daemonset);

}  // namespace kmm::controllers

#endif  // KMM_OPERATOR_CONTROLLERS_CACHES_H_
