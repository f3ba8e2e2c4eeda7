#include "operator/controllers/caches.h"

#include "fmt/format.h"
#include "operator/desired/build_job.h"
#include "operator/desired/labels.h"
#include "operator/desired/node_selection.h"
#include "operator/kube/field_filter.h"

namespace kmm::controllers {
namespace {

kube::InformerOptions Options(const kube::Resource& resource, const std::string& ns,
                              std::string label_selector,
                              std::function<nlohmann::json(nlohmann::json)> transform,
                              kube::ClientMetrics* metrics,
                              std::function<std::string(const nlohmann::json&)> index = nullptr) {
  kube::InformerOptions options;
  options.resource = resource;
  options.ns = ns;
  options.label_selector = std::move(label_selector);
  options.transform = std::move(transform);
  options.index = std::move(index);
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

std::string ModuleIndexOf(const nlohmann::json& object) {
  const nlohmann::json& module =
      kube::FieldAt(object, {"metadata", "labels", desired::kModuleNameLabel});
  const nlohmann::json& ns = kube::FieldAt(object, {"metadata", "namespace"});
  if (!module.is_string() || !ns.is_string()) return "";
  return kube::ObjectKey(ns.get_ref<const std::string&>(), module.get_ref<const std::string&>());
}

// What the reconciler reads of 5,000 loader pods, and nothing else: the labels that tie a
// pod to its Module and kernel, our template hash, the node, the Ready condition, why a
// container waits and the loader's termination messages. What only some pods need is kept for
// those only, as the cache holds 5,000 running ones: the creation time of a pod that is not
// Ready (its start deadline), the finalizers, phase and exit codes of a stopping pod (the
// unload confirmation), the phase of an unload retry pod, the Job uid label of a build or
// sign pod, and why the scheduler has not placed a pod it cannot place (PodScheduled=False).
nlohmann::json TrimPod(nlohmann::json pod) {
  const bool terminating = !kube::FieldAt(pod, {"metadata", "deletionTimestamp"}).is_null();
  const nlohmann::json& component =
      kube::FieldAt(pod, {"metadata", "labels", desired::kComponentLabel});
  const bool unloader = component.is_string() && component == desired::kUnloaderComponent;
  std::string ready_status;
  nlohmann::json unscheduled;
  const nlohmann::json& conditions = kube::FieldAt(pod, {"status", "conditions"});
  if (conditions.is_array()) {
    for (const nlohmann::json& condition : conditions) {
      const std::string type = condition.value("type", "");
      if (type == "Ready") ready_status = condition.value("status", "");
      if (type == "PodScheduled" && condition.value("status", "") == "False") {
        unscheduled = {{"type", type},
                       {"status", "False"},
                       {"reason", condition.value("reason", "")},
                       {"message", condition.value("message", "")}};
      }
    }
  }
  std::vector<std::string> paths = {"/spec/nodeName"};
  if (ready_status != "True") paths.push_back("/metadata/creationTimestamp");
  if (terminating) paths.push_back("/metadata/finalizers");
  if (terminating || unloader) paths.push_back("/status/phase");
  nlohmann::json trimmed = kube::KeepFields(pod, paths);
  for (std::string_view label :
       {desired::kModuleNameLabel, desired::kComponentLabel, desired::kKernelHashLabel,
        desired::kJobUidLabel, desired::kLegacyJobUidLabel}) {
    const nlohmann::json& value = kube::FieldAt(pod, {"metadata", "labels", label});
    if (!value.is_null()) trimmed["metadata"]["labels"][std::string(label)] = value;
  }
  const nlohmann::json& hash =
      kube::FieldAt(pod, {"metadata", "annotations", desired::kTemplateHashAnnotation});
  if (!hash.is_null())
    trimmed["metadata"]["annotations"][std::string(desired::kTemplateHashAnnotation)] = hash;
  if (!ready_status.empty()) {
    trimmed["status"]["conditions"] = {{{"type", "Ready"}, {"status", ready_status}}};
  }
  if (!unscheduled.is_null()) trimmed["status"]["conditions"].push_back(std::move(unscheduled));
  for (const char* field : {"initContainerStatuses", "containerStatuses"}) {
    const nlohmann::json& statuses = kube::FieldAt(pod, {"status", field});
    if (!statuses.is_array()) continue;
    nlohmann::json kept = nlohmann::json::array();
    for (const nlohmann::json& status : statuses) {
      nlohmann::json entry = nlohmann::json::object();
      const nlohmann::json& waiting = kube::FieldAt(status, {"state", "waiting"});
      if (waiting.is_object()) {
        nlohmann::json& kept_waiting = entry["state"]["waiting"] = nlohmann::json::object();
        for (const char* key : {"reason", "message"}) {
          if (waiting.contains(key)) kept_waiting[key] = waiting[key];
        }
      }
      for (const char* state : {"state", "lastState"}) {
        const nlohmann::json& message = kube::FieldAt(status, {state, "terminated", "message"});
        if (!message.is_null()) entry[state]["terminated"]["message"] = message;
        const nlohmann::json& exit_code = kube::FieldAt(status, {state, "terminated", "exitCode"});
        if (terminating && !exit_code.is_null()) entry[state]["terminated"]["exitCode"] = exit_code;
      }
      kept.push_back(std::move(entry));
    }
    trimmed["status"][field] = std::move(kept);
  }
  return trimmed;
}

nlohmann::json TrimDaemonSet(nlohmann::json daemonset) {
  nlohmann::json trimmed = kube::KeepFields(
      daemonset, {"/metadata/labels", "/metadata/generation", "/status/observedGeneration",
                  "/status/desiredNumberScheduled", "/status/numberAvailable"});
  const nlohmann::json& hash =
      kube::FieldAt(daemonset, {"metadata", "annotations", desired::kDesiredHashAnnotation});
  if (!hash.is_null())
    trimmed["metadata"]["annotations"][std::string(desired::kDesiredHashAnnotation)] = hash;
  return trimmed;
}

nlohmann::json TrimJob(nlohmann::json job) {
  nlohmann::json trimmed =
      kube::KeepFields(job, {"/metadata/labels", "/metadata/uid", "/metadata/deletionTimestamp",
                             "/status/active", "/status/succeeded", "/status/failed"});
  for (std::string_view annotation :
       {desired::kInputsHashAnnotation, desired::kKernelAnnotation, desired::kImageAnnotation}) {
    const nlohmann::json& value = kube::FieldAt(job, {"metadata", "annotations", annotation});
    if (!value.is_null()) trimmed["metadata"]["annotations"][std::string(annotation)] = value;
  }
  // Only whether it finished, and how: the Complete and Failed conditions.
  const nlohmann::json& conditions = kube::FieldAt(job, {"status", "conditions"});
  if (conditions.is_array()) {
    for (const nlohmann::json& condition : conditions) {
      const std::string type = condition.value("type", "");
      if ((type == "Complete" || type == "Failed") && condition.value("status", "") == "True") {
        trimmed["status"]["conditions"].push_back(
            {{"type", type}, {"status", "True"}, {"message", condition.value("message", "")}});
      }
    }
  }
  return trimmed;
}

nlohmann::json TrimConfigMap(nlohmann::json config_map) {
  nlohmann::json trimmed = kube::KeepFields(config_map, {});
  for (const char* field : {"data", "binaryData"}) {
    const nlohmann::json& values =
        config_map.contains(field) ? config_map[field] : nlohmann::json();
    if (!values.is_object()) continue;
    nlohmann::json& hashes = trimmed[field] = nlohmann::json::object();
    for (auto it = values.begin(); it != values.end(); ++it) {
      hashes[it.key()] =
          it->is_string() ? desired::InputsHash(it->get_ref<const std::string&>()) : "";
    }
  }
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

std::vector<kube::ObjectPtr> NamespacedCache::ListOwnedBy(std::string_view ns,
                                                          std::string_view module) const {
  const std::string key = kube::ObjectKey(ns, module);
  std::vector<kube::ObjectPtr> owned;
  for (const auto& informer : informers_) {
    if (!informer->options().ns.empty() && informer->options().ns != ns) continue;
    std::vector<kube::ObjectPtr> some = informer->ListIndexed(key);
    owned.insert(owned.end(), some.begin(), some.end());
  }
  return owned;
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
      daemonsets(client, namespaces,
                 Options(kube::resources::kDaemonSets, "", kManagedBySelector, TrimDaemonSet,
                         metrics, ModuleIndexOf)),
      pods(
          client, namespaces,
          Options(kube::resources::kPods, "", kManagedBySelector, TrimPod, metrics, ModuleIndexOf)),
      jobs(
          client, namespaces,
          Options(kube::resources::kJobs, "", kManagedBySelector, TrimJob, metrics, ModuleIndexOf)),
      configmaps(client, namespaces,
                 Options(kube::resources::kConfigMaps, "", "", TrimConfigMap, metrics)) {}

std::vector<kube::Informer*> Caches::all() {
  std::vector<kube::Informer*> all = {&nodes};
  for (const NamespacedCache* cache : {&modules, &daemonsets, &pods, &jobs, &configmaps}) {
    for (const auto& informer : cache->informers()) all.push_back(informer.get());
  }
  return all;
}

}  // namespace kmm::controllers
