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

NamespacedCache::NamespacedCache(kube::KubeClient& client, const std::vector<std::string>& namespaces,
                                 const kube::InformerOptions& options) {
  for (const std::string& ns : namespaces.empty() ? std::vector<std::string>{""} : namespaces) {
    kube::InformerOptions scoped = options;
    scoped.ns = ns;
    informers_.push_back(std::make_unique<kube::Informer>(client, scoped));
  }
}

void NamespacedCache::AddEventHandler(kube::ResourceEventHandler* handler) {
  for (auto& informer : informers_) informer->AddEventHandler(handler);
}

kube::ObjectPtr NamespacedCache::Get(std::string_view key) const {
  const std::string_view ns = key.substr(0, key.find('/'));
  for (const auto& informer : informers_) {
    if (informer->options().ns.empty() || informer->options().ns == ns) {
      if (kube::ObjectPtr object = informer->Get(key)) return object;
    }
  }
  return nullptr;
}

std::vector<kube::ObjectPtr> NamespacedCache::List() const {
  std::vector<kube::ObjectPtr> all;
  for (const auto& informer : informers_) {
    std::vector<kube::ObjectPtr> some = informer->List();
    all.insert(all.end(), some.begin(), some.end());
  }
  return all;
}

size_t NamespacedCache::Size() const {
  size_t size = 0;
  for (const auto& informer : informers_) size += informer->Size();
  return size;
}

bool NamespacedCache::HasSynced() const {
  for (const auto& informer : informers_) {
    if (!informer->HasSynced()) return false;
  }
  return true;
}

Caches::Caches(kube::KubeClient& client, const std::vector<std::string>& namespaces,
               kube::ClientMetrics* metrics)
    : modules(client, namespaces, Options(kube::resources::kModules, "", "", nullptr, metrics)),
      nodes(client, Options(kube::resources::kNodes, "", "", TrimNode, metrics)),
      daemonsets(client, namespaces, Options(kube::resources::kDaemonSets, "", kManagedBySelector,
                                             TrimDaemonSet, metrics)),
      pods(client, namespaces,
           Options(kube::resources::kPods, "", kManagedBySelector, TrimPod, metrics)) {}

std::vector<kube::Informer*> Caches::all() {
  std::vector<kube::Informer*> all = {&nodes};
  for (const NamespacedCache* cache : {&modules, &daemonsets, &pods}) {
    for (const auto& informer : cache->informers()) all.push_back(informer.get());
  }
  return all;
}

}  // namespace kmm::controllers
