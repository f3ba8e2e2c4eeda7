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
  nlohmann::json trimmed = kube::KeepFields(pod, {"/metadata/labels", "/spec/nodeName"});
  // Our one annotation, the Ready condition, and each container's state (why it waits, the
  // loader's termination message): all the reconciler reads of 5,000 pods.
  const nlohmann::json& hash =
      kube::FieldAt(pod, {"metadata", "annotations", desired::kTemplateHashAnnotation});
  if (!hash.is_null())
    trimmed["metadata"]["annotations"][std::string(desired::kTemplateHashAnnotation)] = hash;
  const nlohmann::json& conditions = kube::FieldAt(pod, {"status", "conditions"});
  if (conditions.is_array()) {
    for (const nlohmann::json& condition : conditions) {
      if (condition.value("type", "") == "Ready") {
        trimmed["status"]["conditions"] = {
            {{"type", "Ready"}, {"status", condition.value("status", "")}}};
      }
    }
  }
  for (const char* field : {"initContainerStatuses", "containerStatuses"}) {
    const nlohmann::json& statuses = kube::FieldAt(pod, {"status", field});
    if (!statuses.is_array()) continue;
    nlohmann::json kept = nlohmann::json::array();
    for (const nlohmann::json& status : statuses) {
      nlohmann::json entry = nlohmann::json::object();
      for (const char* state : {"state", "lastState"}) {
        if (status.contains(state)) entry[state] = status[state];
      }
      kept.push_back(std::move(entry));
    }
    trimmed["status"][field] = std::move(kept);
  }
  return trimmed;
}

nlohmann::json TrimDaemonSet(nlohmann::json daemonset) {
  nlohmann::json trimmed = kube::KeepFields(
      daemonset, {"/metadata/labels", "/status/desiredNumberScheduled", "/status/numberAvailable"});
  const nlohmann::json& hash =
      kube::FieldAt(daemonset, {"metadata", "annotations", desired::kDesiredHashAnnotation});
  if (!hash.is_null())
    trimmed["metadata"]["annotations"][std::string(desired::kDesiredHashAnnotation)] = hash;
  return trimmed;
}

NamespacedCache::NamespacedCache(kube::KubeClient& client,
                                 const std::vector<std::string>& namespaces,
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
      daemonsets(
          client, namespaces,
          Options(kube::resources::kDaemonSets, "", kManagedBySelector, TrimDaemonSet, metrics)),
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
