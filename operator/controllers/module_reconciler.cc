#include "operator/controllers/module_reconciler.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "operator/api/validation.h"
#include "operator/desired/device_plugin_daemonset.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"
#include "operator/desired/node_selection.h"
#include "operator/desired/unload_pod.h"
#include "operator/kube/api_error.h"
#include "operator/kube/field_filter.h"
#include "operator/kube/leader_election.h"
#include "spdlog/spdlog.h"

namespace kmm::controllers {
namespace {

using kube::ObjectPtr;
using nlohmann::json;

// While a rollout or an unload is under way, look again even without events.
constexpr absl::Duration kProgressRecheck = absl::Seconds(10);

std::string Label(const json& object, std::string_view key) {
  const json& value = kube::FieldAt(object, {"metadata", "labels", key});
  return value.is_string() ? value.get<std::string>() : "";
}

std::string Annotation(const json& object, std::string_view key) {
  const json& value = kube::FieldAt(object, {"metadata", "annotations", key});
  return value.is_string() ? value.get<std::string>() : "";
}

bool Terminating(const json& object) {
  return !kube::FieldAt(object, {"metadata", "deletionTimestamp"}).is_null();
}

bool PodReady(const json& pod) {
  const json& conditions = kube::FieldAt(pod, {"status", "conditions"});
  if (!conditions.is_array()) return false;
  for (const json& condition : conditions) {
    if (condition.value("type", "") == "Ready") return condition.value("status", "") == "True";
  }
  return false;
}

kube::DeleteOptions BackgroundDeletion() {
  kube::DeleteOptions options;
  options.propagation_policy = "Background";
  return options;
}

// How long a new loader pod may take to become Ready before it counts as broken rather than
// starting, and stops holding back the replacement of the next node.
constexpr absl::Duration kStartDeadline = absl::Minutes(5);

// How long ago the metadata timestamp `field` was (zero when it is missing or unreadable).
absl::Duration Since(const json& object, std::string_view field) {
  absl::Time then;
  std::string error;
  const json& value = kube::FieldAt(object, {"metadata", field});
  const std::string stamp = value.is_string() ? value.get<std::string>() : "";
  if (!absl::ParseTime(absl::RFC3339_full, stamp, &then, &error)) return absl::ZeroDuration();
  return absl::Now() - then;
}

// How long ago the object was created (zero when unknown: treated as new).
absl::Duration Age(const json& object) { return Since(object, "creationTimestamp"); }

// How long an object has been terminating.
absl::Duration TerminatingFor(const json& object) { return Since(object, "deletionTimestamp"); }

std::string NodeOf(const json& pod) {
  const json& node = kube::FieldAt(pod, {"spec", "nodeName"});
  return node.is_string() ? node.get<std::string>() : "";
}

// The first waiting reason of any (init) container, e.g. ImagePullBackOff, CrashLoopBackOff.
std::string WaitingReason(const json& pod, std::string* message) {
  const json status = pod.value("status", json::object());
  for (const char* field : {"initContainerStatuses", "containerStatuses"}) {
    for (const json& container : status.value(field, json::array())) {
      const json waiting =
          container.value("state", json::object()).value("waiting", json::object());
      if (waiting.contains("reason")) {
        *message = waiting.value("message", "");
        return waiting.value("reason", "");
      }
    }
  }
  return "";
}

// The loader's termination message (the unload error) from its last run.
std::string TerminationMessage(const json& pod) {
  for (const json& container :
       pod.value("status", json::object()).value("containerStatuses", json::array())) {
    for (const char* state : {"state", "lastState"}) {
      const json terminated =
          container.value(state, json::object()).value("terminated", json::object());
      if (terminated.contains("message")) return terminated.value("message", "");
    }
  }
  return "";
}

bool HasFinalizer(const json& object, std::string_view finalizer) {
  const json& finalizers = kube::FieldAt(object, {"metadata", "finalizers"});
  if (!finalizers.is_array()) return false;
  for (const json& each : finalizers) {
    if (each.is_string() && each.get_ref<const std::string&>() == finalizer) return true;
  }
  return false;
}

std::string PodPhase(const json& pod) {
  const json& phase = kube::FieldAt(pod, {"status", "phase"});
  return phase.is_string() ? phase.get<std::string>() : "";
}

// Whether the pod got as far as its loader container: every init container (copying kmm-copy,
// the modules, the firmware) completed. One that never did (a module image that cannot be
// pulled) loaded nothing.
bool LoaderCouldHaveRun(const json& pod) {
  const json& init = kube::FieldAt(pod, {"status", "initContainerStatuses"});
  if (!init.is_array() || init.empty()) return false;
  for (const json& container : init) {
    const json& exit_code = kube::FieldAt(container, {"state", "terminated", "exitCode"});
    if (!exit_code.is_number() || exit_code.get<int>() != 0) return false;
  }
  return true;
}

// How a terminating loader pod's loader container ended: its exit code, or nullopt while it
// runs. A pod that stopped before its loader could run loaded nothing: exit code 0.
std::optional<int> LoaderExitCode(const json& pod) {
  const std::string phase = PodPhase(pod);
  const bool pod_done = phase == "Succeeded" || phase == "Failed";
  if (!LoaderCouldHaveRun(pod)) {
    if (pod_done) return 0;
    return std::nullopt;
  }
  // The loader is the pod's one container (the cache keeps no container names).
  for (const json& container :
       pod.value("status", json::object()).value("containerStatuses", json::array())) {
    const json& terminated = kube::FieldAt(container, {"state", "terminated"});
    if (terminated.is_object()) return terminated.value("exitCode", -1);
  }
  if (pod_done) return -1;  // stopped with no word from the loader: not a confirmation
  return std::nullopt;
}

json Condition(std::string type, bool status, std::string reason, std::string message,
               int64_t generation) {
  return {{"type", std::move(type)},
          {"status", status ? "True" : "False"},
          {"reason", std::move(reason)},
          {"message", std::move(message)},
          {"observedGeneration", generation}};
}

// Keeps lastTransitionTime when a condition's status did not change.
json WithTransitionTimes(json conditions, const json& previous) {
  const std::string now = kube::FormatMicroTime(absl::Now()).substr(0, 19) + "Z";
  for (json& condition : conditions) {
    condition["lastTransitionTime"] = now;
    for (const json& old : previous) {
      if (old.value("type", "") == condition["type"] &&
          old.value("status", "") == condition["status"] && old.contains("lastTransitionTime")) {
        condition["lastTransitionTime"] = old["lastTransitionTime"];
      }
    }
  }
  return conditions;
}

// The status we own, without transition times, for comparing with what is stored.
json Comparable(json status) {
  if (status.contains("conditions")) {
    for (json& condition : status["conditions"]) condition.erase("lastTransitionTime");
  }
  return status;
}

std::string_view NameOf(const json& object) {
  const json& name = kube::FieldAt(object, {"metadata", "name"});
  return name.is_string() ? std::string_view(name.get_ref<const std::string&>())
                          : std::string_view();
}

// The Module's objects of one component (any when empty), sorted by name, from the index.
std::vector<ObjectPtr> Owned(const NamespacedCache& cache, const std::string& ns,
                             const std::string& module, std::string_view component) {
  std::vector<ObjectPtr> owned = cache.ListOwnedBy(ns, module);
  if (!component.empty()) {
    std::erase_if(owned, [&](const ObjectPtr& object) {
      return Label(*object, desired::kComponentLabel) != component;
    });
  }
  std::sort(owned.begin(), owned.end(),
            [](const ObjectPtr& a, const ObjectPtr& b) { return NameOf(*a) < NameOf(*b); });
  return owned;
}

// Whether a cached Node concerns a Module: its labels match the selector, or it carries a
// label of the Module's that may have to go. Checked on the cached JSON, so the thousands
// of other nodes cost no copies on every reconcile.
bool Concerns(const json& node, const api::StringMap& selector,
              std::initializer_list<std::string_view> own_labels) {
  const json& labels = kube::FieldAt(node, {"metadata", "labels"});
  if (!labels.is_object()) return selector.empty();
  for (std::string_view label : own_labels) {
    if (labels.contains(label)) return true;
  }
  return std::all_of(selector.begin(), selector.end(), [&](const auto& entry) {
    auto it = labels.find(entry.first);
    return it != labels.end() && it->is_string() &&
           it->template get_ref<const std::string&>() == entry.second;
  });
}

}  // namespace

ModuleReconciler::ModuleReconciler(kube::KubeClient& client, Caches& caches,
                                   kube::EventRecorder& events, desired::OperatorSettings settings)
    : client_(client), caches_(caches), events_(events), settings_(std::move(settings)) {}

absl::Status ModuleReconciler::WriteStatus(const json& object, const json& status) {
  const json current = object.value("status", json::object());
  json current_owned = json::object();
  for (const auto& [key, value] : status.items()) {
    if (current.contains(key)) current_owned[key] = current[key];
  }
  if (Comparable(current_owned) == Comparable(status)) return absl::OkStatus();
  const json metadata = object["metadata"];
  absl::StatusOr<json> patched =
      client_.MergePatch(kube::resources::kModules, metadata.value("namespace", ""),
                         metadata.value("name", ""), {{"status", status}}, "status");
  if (!patched.ok() && !kube::IsApiNotFound(patched.status())) return patched.status();
  return absl::OkStatus();
}

absl::StatusOr<kube::Result> ModuleReconciler::ReportInvalid(const json& object,
                                                             const std::string& problem) {
  const int64_t generation = object["metadata"].value("generation", int64_t{0});
  json status = {{"conditions",
                  WithTransitionTimes(
                      {Condition("Ready", false, "InvalidSpec", problem, generation),
                       Condition("Progressing", false, "InvalidSpec", "", generation),
                       Condition("Degraded", true, "InvalidSpec", problem, generation)},
                      object.value("status", json::object()).value("conditions", json::array()))}};
  events_.Record(object, kube::EventType::kWarning, "InvalidSpec", problem);
  RETURN_IF_ERROR(WriteStatus(object, status));
  // Not retried: only a change to the Module fixes it, and that change is a new event.
  return kube::Result{};
}

absl::Status ModuleReconciler::EnsureFinalizer(const api::Module& module) {
  const auto& finalizers = module.metadata.finalizers;
  if (std::find(finalizers.begin(), finalizers.end(), desired::kModuleFinalizer) !=
      finalizers.end()) {
    return absl::OkStatus();
  }
  json list = finalizers;
  list.push_back(desired::kModuleFinalizer);
  // resourceVersion makes the patch conditional: a concurrent finalizer change is not lost.
  return client_
      .MergePatch(kube::resources::kModules, module.metadata.namespace_name, module.metadata.name,
                  {{"metadata",
                    {{"finalizers", list}, {"resourceVersion", module.metadata.resource_version}}}},
                  "")
      .status();
}

absl::StatusOr<std::string> ModuleReconciler::ApplyIfChanged(const json& desired_object) {
  json object = desired_object;
  const std::string hash = desired::ShortHash(desired_object.dump());
  object["metadata"]["annotations"][std::string(desired::kDesiredHashAnnotation)] = hash;
  const std::string ns = object["metadata"]["namespace"];
  const std::string name = object["metadata"]["name"];
  if (ObjectPtr current = caches_.daemonsets.Get(kube::ObjectKey(ns, name));
      current != nullptr && Annotation(*current, desired::kDesiredHashAnnotation) == hash) {
    return hash;
  }
  spdlog::info("applying DaemonSet {}/{}", ns, name);
  RETURN_IF_ERROR(client_.Apply(kube::resources::kDaemonSets, ns, object,
                                {std::string(kFieldManager), true}, ""));
  return hash;
}

std::optional<ModuleReconciler::BuiltDaemonSet> ModuleReconciler::Remembered(
    const std::string& key) {
  absl::MutexLock lock(&memo_mu_);
  auto it = memo_.find(key);
  if (it == memo_.end()) return std::nullopt;
  return it->second;
}

void ModuleReconciler::Remember(const std::string& key, BuiltDaemonSet built) {
  absl::MutexLock lock(&memo_mu_);
  if (memo_.size() > 100000) memo_.clear();  // old generations; rebuilt on demand
  memo_[key] = std::move(built);
}

absl::Status ModuleReconciler::SetNodeLabel(const std::string& node, const std::string& label,
                                            bool present, const api::Module& module) {
  ObjectPtr cached = caches_.nodes.Get(node);
  if (cached == nullptr) return absl::OkStatus();
  const bool has = !kube::FieldAt(*cached, {"metadata", "labels", label}).is_null();
  if (has == present) return absl::OkStatus();
  json patch = {{"metadata", {{"labels", {{label, present ? json("") : json(nullptr)}}}}}};
  absl::StatusOr<json> patched = client_.MergePatch(kube::resources::kNodes, "", node, patch, "");
  if (!patched.ok()) {
    if (kube::IsApiNotFound(patched.status())) return absl::OkStatus();
    return patched.status();
  }
  if (label == desired::ModuleReadyLabel(module.metadata.namespace_name, module.metadata.name)) {
    events_.Record(*patched, kube::EventType::kNormal, present ? "ModuleLoaded" : "ModuleUnloaded",
                   fmt::format("Module {}/{} {}", module.metadata.namespace_name,
                               module.metadata.name, present ? "is loaded" : "is being unloaded"));
  }
  return absl::OkStatus();
}

absl::StatusOr<kube::Result> ModuleReconciler::Finalize(const api::Module& module,
                                                        const json& object) {
  const std::string& ns = module.metadata.namespace_name;
  const std::string& name = module.metadata.name;
  // Third-party plugin pods leave first: their label goes, then the loaders'.
  for (const ObjectPtr& node : caches_.nodes.List()) {
    const std::string node_name = (*node)["metadata"]["name"];
    RETURN_IF_ERROR(
        SetNodeLabel(node_name, desired::DevicePluginReadyLabel(ns, name), false, module));
    RETURN_IF_ERROR(SetNodeLabel(node_name, desired::ModuleReadyLabel(ns, name), false, module));
  }
  for (const ObjectPtr& daemonset : Owned(caches_.daemonsets, ns, name, "")) {
    if (Terminating(*daemonset)) continue;
    absl::Status deleted =
        client_.Delete(kube::resources::kDaemonSets, ns, (*daemonset)["metadata"].value("name", ""),
                       BackgroundDeletion());
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
  }
  std::vector<ObjectPtr> pods = Owned(caches_.pods, ns, name, desired::kLoaderComponent);
  if (!pods.empty()) {
    ASSIGN_OR_RETURN(json problems, ConfirmUnloads(module, object, pods));
    for (const ObjectPtr& pod : pods) {  // not yet told to stop (their DaemonSet is going)
      if (Terminating(*pod)) continue;
      problems.push_back({{"node", NodeOf(*pod)},
                          {"reason", "Unloading"},
                          {"message", "the loader pod is being stopped"}});
    }
    const int64_t generation = module.metadata.generation;
    RETURN_IF_ERROR(WriteStatus(
        object,
        {{"nodes", problems},
         {"conditions",
          WithTransitionTimes(
              {Condition("Ready", false, "Deleting", "unloading on every node", generation),
               Condition("Progressing", true, "Deleting",
                         fmt::format("{} loader pods still unloading", pods.size()), generation)},
              object.value("status", json::object()).value("conditions", json::array()))}}));
    return kube::Result{false, kProgressRecheck};
  }
  json finalizers = json::array();
  for (const std::string& finalizer : module.metadata.finalizers) {
    if (finalizer != desired::kModuleFinalizer) finalizers.push_back(finalizer);
  }
  absl::StatusOr<json> patched = client_.MergePatch(
      kube::resources::kModules, ns, name,
      {{"metadata",
        {{"finalizers", finalizers}, {"resourceVersion", module.metadata.resource_version}}}},
      "");
  if (!patched.ok() && !kube::IsApiNotFound(patched.status())) return patched.status();
  spdlog::info("Module {}/{}: every loader pod is gone; finalizer removed", ns, name);
  return kube::Result{};
}

absl::StatusOr<kube::Result> ModuleReconciler::Reconcile(const std::string& key) {
  ObjectPtr object = caches_.modules.Get(key);
  if (object == nullptr) return kube::Result{};  // gone; its DaemonSets go with their owner
  absl::StatusOr<api::Module> parsed = api::ParseModule(*object);
  // Deletion comes before validation: a Module that became invalid must still be deletable.
  if (Terminating(*object)) {
    if (parsed.ok()) return Finalize(*parsed, *object);
    api::Module unreadable;  // its spec cannot be read: no retry pod can be built from it
    unreadable.metadata = api::ParseModuleMetadata(*object);
    return Finalize(unreadable, *object);
  }
  if (!parsed.ok()) return ReportInvalid(*object, std::string(parsed.status().message()));
  api::Module& module = *parsed;
  if (std::vector<std::string> problems = api::ValidateModule(module); !problems.empty()) {
    return ReportInvalid(*object, fmt::format("{}", fmt::join(problems, "; ")));
  }
  RETURN_IF_ERROR(EnsureFinalizer(module));

  const std::string& ns = module.metadata.namespace_name;
  const std::string& name = module.metadata.name;
  const int64_t generation = module.metadata.generation;
  const std::string ready_label = desired::ModuleReadyLabel(ns, name);
  const std::string plugin_label = desired::DevicePluginReadyLabel(ns, name);
  std::vector<desired::NodeInfo> nodes;  // the nodes this Module concerns
  for (const ObjectPtr& node : caches_.nodes.List()) {
    if (Concerns(*node, module.spec.selector, {ready_label, plugin_label})) {
      nodes.push_back(desired::NodeInfoFrom(*node));
    }
  }

  // Loader DaemonSets: one per mapped kernel.
  std::map<std::string, std::string> template_hash_by_kernel_hash;  // for outdated pods
  std::set<std::string> wanted;
  std::vector<std::string> unmapped;
  int matching_nodes = 0;
  for (const desired::KernelGroup& group : desired::GroupTargetNodes(module, nodes)) {
    matching_nodes += static_cast<int>(group.nodes.size());
    if (!group.mapping) {
      unmapped.push_back(fmt::format("{} (nodes: {})", group.kernel, fmt::join(group.nodes, ", ")));
      continue;
    }
    // Building a DaemonSet costs more than everything else here; the same Module generation
    // and kernel always build the same one, so remember what it was and skip the build while
    // the cached DaemonSet still carries it.
    const std::string memo_key = fmt::format("{}\n{}\n{}\n{}", module.metadata.uid, generation,
                                             group.kernel, group.mapping->container_image);
    std::optional<BuiltDaemonSet> built = Remembered(memo_key);
    ObjectPtr current = built ? caches_.daemonsets.Get(kube::ObjectKey(ns, built->name)) : nullptr;
    if (!built || current == nullptr ||
        Annotation(*current, desired::kDesiredHashAnnotation) != built->desired_hash) {
      json daemonset = desired::LoaderDaemonSetFor(module, *group.mapping, group.kernel, settings_);
      ASSIGN_OR_RETURN(std::string desired_hash, ApplyIfChanged(daemonset));
      built = BuiltDaemonSet{daemonset["metadata"]["name"], desired_hash,
                             daemonset["spec"]["template"]["metadata"]["labels"]
                                      [std::string(desired::kKernelHashLabel)],
                             daemonset["spec"]["template"]["metadata"]["annotations"]
                                      [std::string(desired::kTemplateHashAnnotation)]};
      Remember(memo_key, *built);
    }
    wanted.insert(built->name);
    template_hash_by_kernel_hash[built->kernel_hash] = built->template_hash;
  }
  if (!unmapped.empty()) {
    events_.Record(*object, kube::EventType::kWarning, "NoKernelMapping",
                   fmt::format("no kernel mapping for kernel {}", fmt::join(unmapped, "; ")));
  }
  const bool third_party = desired::HasThirdPartyDevicePlugin(module);
  if (third_party) {
    json plugin = desired::DevicePluginDaemonSetFor(module, settings_);
    RETURN_IF_ERROR(ApplyIfChanged(plugin).status());
    wanted.insert(plugin["metadata"]["name"]);
  }

  std::vector<ObjectPtr> loader_pods = Owned(caches_.pods, ns, name, desired::kLoaderComponent);
  // DaemonSets no longer wanted (a kernel without nodes, a dropped plugin): their nodes lose
  // the ready label before the pods go.
  for (const ObjectPtr& daemonset : Owned(caches_.daemonsets, ns, name, "")) {
    const std::string ds_name = (*daemonset)["metadata"]["name"];
    if (wanted.contains(ds_name) || Terminating(*daemonset)) continue;
    const std::string kernel_hash = Label(*daemonset, desired::kKernelHashLabel);
    for (const ObjectPtr& pod : loader_pods) {
      if (!kernel_hash.empty() && Label(*pod, desired::kKernelHashLabel) == kernel_hash) {
        RETURN_IF_ERROR(
            SetNodeLabel(NodeOf(*pod), desired::DevicePluginReadyLabel(ns, name), false, module));
        RETURN_IF_ERROR(
            SetNodeLabel(NodeOf(*pod), desired::ModuleReadyLabel(ns, name), false, module));
      }
    }
    spdlog::info("Module {}/{}: deleting DaemonSet {}, no longer needed", ns, name, ds_name);
    absl::Status deleted =
        client_.Delete(kube::resources::kDaemonSets, ns, ds_name, BackgroundDeletion());
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
  }

  // Loader pods: readiness per node, outdated templates, problems.
  std::set<std::string> ready_nodes;
  std::vector<ObjectPtr> outdated;          // every pod with an older template
  std::vector<ObjectPtr> outdated_unready;  // those of them that serve nothing
  bool in_transition = false;
  // A replacement under way holds back the next healthy one: a pod still unloading, or a
  // current pod still starting. One that has not become Ready within the deadline is broken,
  // reported, and no longer holds anything back.
  bool replacement_in_flight = false;
  json problems = json::array();
  std::set<std::string> degraded_reasons;
  ASSIGN_OR_RETURN(json unloads, ConfirmUnloads(module, *object, loader_pods));
  for (json& unload : unloads) {
    in_transition = true;
    // An unload under way holds the rollout back; a blocked one is that node's problem only.
    if (unload["reason"] == "Unloading") replacement_in_flight = true;
    if (unload["reason"] == "UnloadBlocked") degraded_reasons.insert("UnloadBlocked");
    problems.push_back(std::move(unload));
  }
  for (const ObjectPtr& pod : loader_pods) {
    const std::string node = NodeOf(*pod);
    if (Terminating(*pod)) continue;  // ConfirmUnloads reported it
    auto expected = template_hash_by_kernel_hash.find(Label(*pod, desired::kKernelHashLabel));
    const bool is_outdated = expected != template_hash_by_kernel_hash.end() &&
                             Annotation(*pod, desired::kTemplateHashAnnotation) != expected->second;
    if (is_outdated) outdated.push_back(pod);
    if (PodReady(*pod)) {
      ready_nodes.insert(node);
      continue;
    }
    in_transition = true;
    if (is_outdated) {
      outdated_unready.push_back(pod);
    } else if (Age(*pod) < kStartDeadline) {
      replacement_in_flight = true;
    }
    std::string message;
    const std::string reason = WaitingReason(*pod, &message);
    if (reason == "ErrImagePull" || reason == "ImagePullBackOff" || reason == "InvalidImageName") {
      degraded_reasons.insert("ImagePullFailed");
      problems.push_back({{"node", node}, {"reason", "ImagePullFailed"}, {"message", message}});
    } else if (reason == "CrashLoopBackOff") {
      degraded_reasons.insert("LoaderCrashLooping");
      std::string last = TerminationMessage(*pod);
      problems.push_back({{"node", node},
                          {"reason", "LoaderCrashLooping"},
                          {"message", last.empty() ? message : last}});
    }
  }
  // Outdated pods that are not Ready serve nothing: all of them are replaced at once, so a
  // fixed image or parameter reaches the nodes where the old one failed. Ready ones go one
  // node at a time, the ready label first, while no other replacement is under way.
  std::vector<ObjectPtr> replace = outdated_unready;
  if (replace.empty() && !replacement_in_flight) {
    for (const ObjectPtr& pod : outdated) {
      if (PodReady(*pod)) {
        replace.push_back(pod);
        break;
      }
    }
  }
  for (const ObjectPtr& pod : replace) {
    const std::string node = NodeOf(*pod);
    RETURN_IF_ERROR(SetNodeLabel(node, desired::DevicePluginReadyLabel(ns, name), false, module));
    RETURN_IF_ERROR(SetNodeLabel(node, desired::ModuleReadyLabel(ns, name), false, module));
    spdlog::info("Module {}/{}: replacing the outdated loader pod on {}", ns, name, node);
    absl::Status deleted =
        client_.Delete(kube::resources::kPods, ns, (*pod)["metadata"].value("name", ""), {});
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
    ready_nodes.erase(node);
    in_transition = true;
  }
  // Node labels follow the pods.
  std::set<std::string> plugin_ready_nodes;
  if (third_party) {
    for (const ObjectPtr& pod : Owned(caches_.pods, ns, name, desired::kDevicePluginComponent)) {
      if (!Terminating(*pod) && PodReady(*pod)) plugin_ready_nodes.insert(NodeOf(*pod));
    }
  }
  for (const desired::NodeInfo& node : nodes) {  // only nodes whose label must change
    const bool loaded = ready_nodes.contains(node.name);
    const bool plugin = loaded && plugin_ready_nodes.contains(node.name);
    if (node.labels.contains(ready_label) != loaded) {
      RETURN_IF_ERROR(SetNodeLabel(node.name, ready_label, loaded, module));
    }
    if (node.labels.contains(plugin_label) != plugin) {
      RETURN_IF_ERROR(SetNodeLabel(node.name, plugin_label, plugin, module));
    }
  }

  // Status, in upstream's shape plus conditions.
  int desired_loaders = 0, available_loaders = 0, desired_plugins = 0, available_plugins = 0;
  for (const ObjectPtr& daemonset : Owned(caches_.daemonsets, ns, name, "")) {
    if (!wanted.contains((*daemonset)["metadata"].value("name", ""))) continue;
    const json status = daemonset->value("status", json::object());
    const bool loader = Label(*daemonset, desired::kComponentLabel) == desired::kLoaderComponent;
    (loader ? desired_loaders : desired_plugins) += status.value("desiredNumberScheduled", 0);
    (loader ? available_loaders : available_plugins) += status.value("numberAvailable", 0);
  }
  if (!unmapped.empty()) degraded_reasons.insert("NoKernelMapping");
  std::string degraded_message;
  if (!unmapped.empty())
    degraded_message = fmt::format("no kernel mapping for kernel {}", fmt::join(unmapped, "; "));
  for (const json& problem : problems) {
    if (problem["reason"] == "Unloading") continue;
    if (!degraded_message.empty()) degraded_message += "; ";
    degraded_message +=
        fmt::format("{} on {}: {}", problem["reason"].get<std::string>(),
                    problem["node"].get<std::string>(), problem["message"].get<std::string>());
  }
  const bool progressing =
      in_transition || !outdated.empty() || available_loaders < desired_loaders;
  const bool ready =
      !progressing && degraded_reasons.empty() && desired_loaders == available_loaders;
  const std::string degraded_reason =
      degraded_reasons.empty() ? "AsExpected" : fmt::format("{}", fmt::join(degraded_reasons, ","));
  json conditions = {
      Condition("Ready", ready, ready ? "Loaded" : (progressing ? "Progressing" : degraded_reason),
                fmt::format("{} of {} nodes loaded", available_loaders, desired_loaders),
                generation),
      Condition("Progressing", progressing, progressing ? "Rollout" : "AsExpected",
                progressing ? fmt::format("{} outdated, {} available of {}", outdated.size(),
                                          available_loaders, desired_loaders)
                            : "",
                generation),
      Condition("Degraded", !degraded_reasons.empty(), degraded_reason, degraded_message,
                generation),
  };
  json status = {
      {"moduleLoader",
       {{"nodesMatchingSelectorNumber", matching_nodes},
        {"desiredNumber", desired_loaders},
        {"availableNumber", available_loaders}}},
      {"devicePlugin",
       {{"nodesMatchingSelectorNumber", third_party ? matching_nodes : 0},
        {"desiredNumber", desired_plugins},
        {"availableNumber", available_plugins}}},
      {"conditions",
       WithTransitionTimes(
           conditions, object->value("status", json::object()).value("conditions", json::array()))},
      {"nodes", problems},
  };
  RETURN_IF_ERROR(WriteStatus(*object, status));
  if (progressing) return kube::Result{false, kProgressRecheck};
  return kube::Result{};
}

absl::Status ModuleReconciler::RemoveUnloadFinalizer(const json& pod) {
  json finalizers = json::array();
  for (const json& finalizer : pod["metadata"].value("finalizers", json::array())) {
    if (finalizer != desired::kUnloadFinalizer) finalizers.push_back(finalizer);
  }
  const std::string ns = pod["metadata"].value("namespace", "");
  const std::string name = pod["metadata"].value("name", "");
  // Conditional on the version seen: a pod that changed meanwhile is looked at again.
  absl::StatusOr<json> patched =
      client_.MergePatch(kube::resources::kPods, ns, name,
                         {{"metadata",
                           {{"finalizers", finalizers},
                            {"resourceVersion", pod["metadata"].value("resourceVersion", "")}}}},
                         "");
  if (!patched.ok() && !kube::IsApiNotFound(patched.status())) return patched.status();
  return absl::OkStatus();
}

absl::StatusOr<json> ModuleReconciler::ConfirmUnloads(const api::Module& module, const json& object,
                                                      const std::vector<ObjectPtr>& loader_pods) {
  const std::string& ns = module.metadata.namespace_name;
  json progress = json::array();
  for (const ObjectPtr& pod : loader_pods) {
    if (!Terminating(*pod)) continue;
    const std::string node = NodeOf(*pod);
    const std::string pod_name = (*pod)["metadata"].value("name", "");
    const std::string loader_message = TerminationMessage(*pod);
    const std::optional<int> exit_code = LoaderExitCode(*pod);
    if (!HasFinalizer(*pod, desired::kUnloadFinalizer)) {
      // Without the finalizer (a pod from before it existed) the pod goes when it stops;
      // until then, say what is known.
      const bool blocked = (exit_code && *exit_code != 0) ||
                           TerminatingFor(*pod) > absl::Seconds(settings_.unload_timeout_seconds);
      progress.push_back({{"node", node},
                          {"reason", blocked ? "UnloadBlocked" : "Unloading"},
                          {"message", loader_message.empty() ? "the loader is unloading the modules"
                                                             : loader_message}});
      continue;
    }
    if (node.empty() || caches_.nodes.Get(node) == nullptr) {
      spdlog::info("Module {}/{}: node {} is gone; nothing left to unload there", ns,
                   module.metadata.name, node.empty() ? "(none)" : node);
      RETURN_IF_ERROR(RemoveUnloadFinalizer(*pod));
      continue;
    }
    if (!exit_code) {
      const bool overdue = TerminatingFor(*pod) > absl::Seconds(settings_.unload_timeout_seconds);
      progress.push_back({{"node", node},
                          {"reason", overdue ? "UnloadBlocked" : "Unloading"},
                          {"message", "the loader is unloading the modules"}});
      continue;
    }
    const std::string retry_name = desired::UnloadPodName(pod_name);
    ObjectPtr retry = caches_.pods.Get(kube::ObjectKey(ns, retry_name));
    if (*exit_code == 0 || (retry != nullptr && PodPhase(*retry) == "Succeeded")) {
      spdlog::info("Module {}/{}: unload on {} confirmed", ns, module.metadata.name, node);
      RETURN_IF_ERROR(RemoveUnloadFinalizer(*pod));
      if (retry != nullptr) {
        events_.Record(object, kube::EventType::kNormal, "UnloadConfirmed",
                       fmt::format("the retried unload on {} succeeded", node));
        absl::Status deleted = client_.Delete(kube::resources::kPods, ns, retry_name, {});
        if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
      }
      continue;
    }
    // The loader gave up (a module still in use) or was killed: retry until it is unloaded.
    if (retry == nullptr) {
      const std::string kernel = desired::NodeInfoFrom(*caches_.nodes.Get(node)).kernel;
      std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, kernel);
      if (!mapping) {
        // Without a mapping for the node's kernel now (it rebooted into another kernel), no
        // module of this Module can be loaded there.
        spdlog::info(
            "Module {}/{}: no kernel mapping for {} on {} now (or the spec cannot be "
            "read); nothing kmm can unload there",
            ns, module.metadata.name, kernel, node);
        RETURN_IF_ERROR(RemoveUnloadFinalizer(*pod));
        continue;
      }
      const json unload_pod = desired::UnloadPodFor(
          desired::LoaderDaemonSetFor(module, *mapping, kernel, settings_), pod_name, node);
      spdlog::info("Module {}/{}: the unload on {} failed ({}); retrying in pod {}", ns,
                   module.metadata.name, node, loader_message, retry_name);
      absl::StatusOr<json> created = client_.Create(kube::resources::kPods, ns, unload_pod);
      if (!created.ok() && !kube::IsApiAlreadyExists(created.status())) return created.status();
      events_.Record(object, kube::EventType::kWarning, "UnloadBlocked",
                     fmt::format("unload on {} failed, retrying: {}", node, loader_message));
    }
    const std::string retry_message = retry != nullptr ? TerminationMessage(*retry) : "";
    const std::string message = retry_message.empty() ? loader_message : retry_message;
    progress.push_back(
        {{"node", node},
         {"reason", "UnloadBlocked"},
         {"message", fmt::format("{} (retrying in pod {})",
                                 message.empty() ? "the loader was stopped before it "
                                                   "unloaded"
                                                 : message,
                                 retry_name)}});
  }
  return progress;
}

absl::StatusOr<kube::Result> NodeKernelLabelReconciler::Reconcile(const std::string& key) {
  ObjectPtr node = caches_.nodes.Get(key);
  if (node == nullptr) return kube::Result{};
  const desired::NodeInfo info = desired::NodeInfoFrom(*node);
  if (info.kernel.empty()) return kube::Result{};
  const std::string value = desired::KernelLabelValue(info.kernel);
  auto current = info.labels.find(std::string(desired::kKernelVersionLabel));
  if (current != info.labels.end() && current->second == value) return kube::Result{};
  absl::StatusOr<json> patched =
      client_.MergePatch(kube::resources::kNodes, "", info.name,
                         {{"metadata", {{"labels", {{desired::kKernelVersionLabel, value}}}}}}, "");
  if (!patched.ok() && !kube::IsApiNotFound(patched.status())) return patched.status();
  return kube::Result{};
}

}  // namespace kmm::controllers
