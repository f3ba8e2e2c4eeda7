#include "operator/controllers/caches.h"

#include "fmt/format.h"
#include "operator/desired/labels.h"
#include "operator/desired/node_selection.h"
#include "operator/kube/field_filter.h"

namespace kmm::controllers {
namespace {

kube::InformerOptions Options(const kube::Resource& resource, const std::string& ns,
                              std::string label_selector,
                              std::function<nlohmann::json(nlohmann::json)> transform,
                              kube::ClientMetrics* metrics) {
  kube::InformerOptions options;
  options.resource = resource;
  options.ns = ns;
  options.label_selector = std::move(label_selector);
  options.transform = std::move(transform);
  if (metrics != nullptr) {
    options.watch_restarts = &metrics->watch_restarts_total.WithLabels({resource.resource});
  }
  return options;
}

const std::string kManagedBySelector =
    fmt::format("{}={}", desired::kManagedByLabel, desired::kManagedByValue);

}  // namespace

nlohmann::json TrimNode(nlohmann::json node) {
  return kube::KeepFields(node, desired::NodeFields());
}

nlohmann::json TrimPod(nlohmann::json pod) {
  return kube::KeepFields(pod, {"/metadata/labels", "/metadata/annotations", "/spec/nodeName",
                                "/status/phase", "/status/conditions", "/status/containerStatuses",
                                "/status/initContainerStatuses"});
}

nlohmann::json TrimDaemonSet(nlohmann::json daemonset) {
  return kube::KeepFields(daemonset, {"/metadata/labels", "/metadata/annotations",
                                      "/spec/template/metadata/annotations", "/status"});
}

Caches::Caches(kube::KubeClient& client, const std::string& ns, kube::ClientMetrics* metrics)
    : modules(client, Options(kube::resources::kModules, ns, "", nullptr, metrics)),
      nodes(client, Options(kube::resources::kNodes, "", "", TrimNode, metrics)),
      daemonsets(client, Options(kube::resources::kDaemonSets, ns, kManagedBySelector,
                                 TrimDaemonSet, metrics)),
      pods(client, Options(kube::resources::kPods, ns, kManagedBySelector, TrimPod, metrics)) {}

}  // namespace kmm::controllers
