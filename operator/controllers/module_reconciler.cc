#include "operator/controllers/module_reconciler.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "common/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "operator/api/validation.h"
#include "operator/desired/device_plugin_daemonset.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"
#include "operator/desired/module_status.h"
#include "operator/desired/node_selection.h"
#include "operator/desired/plan.h"
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
// A kernel's image that could not be checked (the registry unreachable, a Secret the
// operator does not watch missing or unreadable) is checked again this often: no event
// would bring it back.
constexpr absl::Duration kImageRecheck = absl::Seconds(60);

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

// How long a third-party device plugin pod may take to stop before a loader on its node
// unloads anyway (a device it still holds then shows as a blocked, retried unload).
constexpr absl::Duration kPluginStopDeadline = absl::Minutes(2);

// How long before `now` the metadata timestamp `field` was (zero when missing or unreadable).
absl::Duration Since(const json& object, std::string_view field, absl::Time now) {
  absl::Time then;
  std::string error;
  const json& value = kube::FieldAt(object, {"metadata", field});
  const std::string stamp = value.is_string() ? value.get<std::string>() : "";
  if (!absl::ParseTime(absl::RFC3339_full, stamp, &then, &error)) return absl::ZeroDuration();
  return now - then;
}

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

using desired::Condition;

// Keeps lastTransitionTime when a condition's status did not change.
json WithTransitionTimes(json conditions, const json& previous, absl::Time at) {
  const std::string now = kube::FormatMicroTime(at).substr(0, 19) + "Z";
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

// The label of a NodeInfo, or "" when absent.
std::string NodeLabel(const desired::NodeInfo& node, const std::string& key) {
  auto it = node.labels.find(key);
  return it == node.labels.end() ? "" : it->second;
}

}  // namespace

// What the caches say about one Module's objects.
struct ModuleReconciler::Observed {
  std::vector<desired::NodeInfo> nodes;  // those it targets or has labelled
  std::vector<ObjectPtr> daemonsets;     // every one it owns, by name
  std::vector<ObjectPtr> loader_pods;
  std::vector<ObjectPtr> plugin_pods;  // of the third-party plugin DaemonSet
};

// What applying the plan left in place.
struct ModuleReconciler::Applied {
  std::set<std::string> wanted;  // DaemonSets of the plan
  // Loader DaemonSets of an older version that nodes still run (ordered upgrade).
  std::set<std::string> kept;
  std::map<std::string, std::string> template_hash_by_kernel_hash;  // for outdated pods
  std::vector<desired::ImageProblem> images;  // kernels whose loaders wait for their image
};

// What the loader pods say, and what is being done about it.
struct ModuleReconciler::Rollout {
  std::set<std::string> ready_nodes;
  std::vector<ObjectPtr> outdated;          // every pod with an older template
  std::vector<ObjectPtr> outdated_unready;  // those of them that serve nothing
  bool in_transition = false;
  // A replacement under way holds back the next healthy one: a pod still unloading, or a
  // current pod still starting. One that has not become Ready within the deadline is broken,
  // reported, and no longer holds anything back.
  bool replacement_in_flight = false;
  std::vector<desired::NodeProblem> problems;
};

ModuleReconciler::ModuleReconciler(kube::KubeClient& client, Caches& caches,
                                   kube::EventRecorder& events, desired::OperatorSettings settings,
                                   Clock& clock, registry::RegistryClient* registry)
    : client_(client),
      caches_(caches),
      events_(events),
      settings_(std::move(settings)),
      clock_(clock),
      own_registry_(registry == nullptr ? std::make_unique<registry::RegistryClient>() : nullptr),
      images_(client, caches, events, registry == nullptr ? *own_registry_ : *registry, settings_,
              clock) {}

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
  const api::Module& module = *parsed;
  if (std::vector<std::string> problems = api::ValidateModule(module); !problems.empty()) {
    return ReportInvalid(*object, fmt::format("{}", fmt::join(problems, "; ")));
  }
  RETURN_IF_ERROR(EnsureFinalizer(module));

  const Observed observed = Observe(module);
  const desired::ModulePlan plan = desired::PlanFor(module, observed.nodes);
  ReportPlanProblems(*object, plan);
  ASSIGN_OR_RETURN(const Applied applied, ApplyPlan(module, *object, plan, observed));
  ASSIGN_OR_RETURN(Rollout rollout, ObserveRollout(module, *object, observed, applied));
  RETURN_IF_ERROR(CollectGarbage(module, *object, plan, observed, applied, &rollout));
  RETURN_IF_ERROR(ReplaceOutdatedPods(module, *object, plan, observed, &rollout));
  RETURN_IF_ERROR(MoveNodeVersions(module, *object, plan, observed, &rollout));
  RETURN_IF_ERROR(SetNodeLabels(module, plan, observed, rollout));

  const desired::RolloutState state = Summarize(observed, applied, rollout);
  json status = desired::ModuleStatusFor(plan, state, module.metadata.generation);
  status["conditions"] = WithTransitionTimes(
      status["conditions"],
      object->value("status", json::object()).value("conditions", json::array()), clock_.Now());
  RETURN_IF_ERROR(WriteStatus(*object, status));
  for (const json& condition : status["conditions"]) {
    if (condition["type"] == "Progressing" && condition["status"] == "True") {
      return kube::Result{false, kProgressRecheck};
    }
  }
  for (const desired::ImageProblem& image : state.images) {
    if (image.reason == "ImageCheckFailed" || image.reason == "SignInputMissing") {
      return kube::Result{false, kImageRecheck};
    }
  }
  return kube::Result{};
}

ModuleReconciler::Observed ModuleReconciler::Observe(const api::Module& module) {
  const std::string& ns = module.metadata.namespace_name;
  const std::string& name = module.metadata.name;
  Observed observed;
  const std::string ready_label = desired::ModuleReadyLabel(ns, name);
  const std::string plugin_label = desired::DevicePluginReadyLabel(ns, name);
  const std::string loader_version_label = desired::LoaderVersionLabel(ns, name);
  const std::string updating_label = desired::ModuleUpdatingLabel(ns, name);
  for (const ObjectPtr& node : caches_.nodes.List()) {
    if (Concerns(*node, module.spec.selector,
                 {ready_label, plugin_label, loader_version_label, updating_label})) {
      observed.nodes.push_back(desired::NodeInfoFrom(*node));
    }
  }
  observed.daemonsets = Owned(caches_.daemonsets, ns, name, "");
  observed.loader_pods = Owned(caches_.pods, ns, name, desired::kLoaderComponent);
  observed.plugin_pods = Owned(caches_.pods, ns, name, desired::kDevicePluginComponent);
  return observed;
}

void ModuleReconciler::ReportPlanProblems(const json& object, const desired::ModulePlan& plan) {
  if (!plan.unmapped.empty()) {
    std::vector<std::string> kernels;
    for (const desired::KernelGroup& group : plan.unmapped) {
      kernels.push_back(fmt::format("{} ({} nodes)", group.kernel, group.nodes.size()));
    }
    events_.Record(object, kube::EventType::kWarning, "NoKernelMapping",
                   fmt::format("no kernel mapping for kernel {}", fmt::join(kernels, "; ")));
  }
  for (const std::string& warning : plan.warnings) {
    events_.Record(object, kube::EventType::kWarning, "ImageWithoutTag", warning);
  }
  for (const desired::UnsupportedField& field : plan.unsupported) {
    events_.Record(object, kube::EventType::kWarning, "FieldNotSupportedYet",
                   fmt::format("{} is not supported yet: {}", field.field, field.advice));
  }
}

absl::StatusOr<ModuleReconciler::Applied> ModuleReconciler::ApplyPlan(
    const api::Module& module, const json& object, const desired::ModulePlan& plan,
    const Observed& observed) {
  const std::string& ns = module.metadata.namespace_name;
  Applied applied;
  // Kernels whose image is made in the cluster, as the Jobs' kernel annotation holds them: the
  // mapping's kernel, without COS's trailing '+' that target.kernel keeps.
  std::set<std::string> image_kernels;
  for (const desired::LoaderTarget& planned : plan.loaders) {
    desired::LoaderTarget target = planned;
    if (target.mapping.build || target.mapping.sign) {
      image_kernels.insert(target.mapping.kernel_version);
      ASSIGN_OR_RETURN(ImageReadiness image, images_.Ensure(module, object, target));
      if (!image.ready) {
        applied.images.push_back(std::move(image.problem));
        const std::string name =
            desired::LoaderDaemonSetName(module.metadata.name, target.kernel, plan.version);
        for (const ObjectPtr& daemonset : observed.daemonsets) {
          if (NameOf(*daemonset) == name) applied.kept.insert(name);
        }
        continue;
      }
      target.mapping.container_image = image.image;
    }
    // Building a DaemonSet costs more than everything else here; the same Module generation
    // and kernel always build the same one, so remember what it was and skip the build while
    // the cached DaemonSet still carries it.
    const std::string memo_key =
        fmt::format("{}\n{}\n{}\n{}", module.metadata.uid, module.metadata.generation,
                    target.kernel, target.mapping.container_image);
    std::optional<BuiltDaemonSet> built = Remembered(memo_key);
    ObjectPtr current = built ? caches_.daemonsets.Get(kube::ObjectKey(ns, built->name)) : nullptr;
    if (!built || current == nullptr ||
        Annotation(*current, desired::kDesiredHashAnnotation) != built->desired_hash) {
      json daemonset =
          desired::LoaderDaemonSetFor(module, target.mapping, target.kernel, settings_);
      ASSIGN_OR_RETURN(std::string desired_hash, ApplyIfChanged(daemonset));
      built = BuiltDaemonSet{daemonset["metadata"]["name"], desired_hash,
                             daemonset["spec"]["template"]["metadata"]["labels"]
                                      [std::string(desired::kKernelHashLabel)],
                             daemonset["spec"]["template"]["metadata"]["annotations"]
                                      [std::string(desired::kTemplateHashAnnotation)]};
      Remember(memo_key, *built);
    }
    applied.wanted.insert(built->name);
    applied.template_hash_by_kernel_hash[built->kernel_hash] = built->template_hash;
  }
  RETURN_IF_ERROR(images_.DeleteJobsExcept(module, image_kernels));
  if (plan.third_party_plugin) {
    json plugin = desired::DevicePluginDaemonSetFor(module, settings_);
    RETURN_IF_ERROR(ApplyIfChanged(plugin).status());
    applied.wanted.insert(plugin["metadata"]["name"]);
  }
  // Ordered upgrade: a loader DaemonSet of an older version stays, untouched, while a node
  // still runs it; nodes leave it one by one as administrators relabel them.
  const std::string loader_version_label = desired::LoaderVersionLabel(ns, module.metadata.name);
  for (const ObjectPtr& daemonset : observed.daemonsets) {
    const std::string version = Label(*daemonset, desired::kModuleVersionLabel);
    if (version.empty() || version == plan.version ||
        applied.wanted.contains(std::string(NameOf(*daemonset)))) {
      continue;
    }
    const bool in_use = std::any_of(
        observed.nodes.begin(), observed.nodes.end(),
        [&](const auto& node) { return NodeLabel(node, loader_version_label) == version; });
    if (in_use) applied.kept.insert(std::string(NameOf(*daemonset)));
  }
  return applied;
}

absl::Duration ModuleReconciler::UpdatingSince(const Observed& observed, const api::Module& module,
                                               const std::string& node) {
  const std::string label =
      desired::ModuleUpdatingLabel(module.metadata.namespace_name, module.metadata.name);
  for (const desired::NodeInfo& info : observed.nodes) {
    if (info.name != node) continue;
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(NodeLabel(info, label), &seconds)) break;
    return clock_.Now() - absl::FromUnixSeconds(seconds);
  }
  return absl::InfiniteDuration();
}

absl::StatusOr<ModuleReconciler::Rollout> ModuleReconciler::ObserveRollout(
    const api::Module& module, const json& object, const Observed& observed,
    const Applied& applied) {
  Rollout rollout;
  ASSIGN_OR_RETURN(std::vector<desired::NodeProblem> unloads,
                   ConfirmUnloads(module, object, observed.loader_pods));
  for (desired::NodeProblem& unload : unloads) {
    rollout.in_transition = true;
    // An unload under way holds the rollout back; a blocked one is that node's problem only.
    if (unload.reason == "Unloading") rollout.replacement_in_flight = true;
    rollout.problems.push_back(std::move(unload));
  }
  for (const ObjectPtr& pod : observed.loader_pods) {
    const std::string node = NodeOf(*pod);
    if (Terminating(*pod)) continue;  // ConfirmUnloads reported it
    auto expected =
        applied.template_hash_by_kernel_hash.find(Label(*pod, desired::kKernelHashLabel));
    const bool is_outdated = expected != applied.template_hash_by_kernel_hash.end() &&
                             Annotation(*pod, desired::kTemplateHashAnnotation) != expected->second;
    if (is_outdated) rollout.outdated.push_back(pod);
    if (PodReady(*pod)) {
      rollout.ready_nodes.insert(node);
      continue;
    }
    rollout.in_transition = true;
    if (is_outdated) {
      rollout.outdated_unready.push_back(pod);
    } else if (UpdatingSince(observed, module, node) < kStartDeadline) {
      // The new pod of a node that was serving before this update: wait for it. A node
      // that was not serving (a broken node) holds nothing back.
      rollout.replacement_in_flight = true;
    }
    std::string message;
    const std::string reason = WaitingReason(*pod, &message);
    if (reason == "ErrImagePull" || reason == "ImagePullBackOff" || reason == "InvalidImageName") {
      rollout.problems.push_back({node, "ImagePullFailed", message});
    } else if (reason == "CrashLoopBackOff") {
      const std::string last = TerminationMessage(*pod);
      rollout.problems.push_back({node, "LoaderCrashLooping", last.empty() ? message : last});
    }
  }
  return rollout;
}

absl::StatusOr<bool> ModuleReconciler::DrainNode(const api::Module& module, const json& object,
                                                 const Observed& observed,
                                                 const std::string& node) {
  const std::string& ns = module.metadata.namespace_name;
  const std::string& name = module.metadata.name;
  RETURN_IF_ERROR(SetNodeLabel(node, desired::DevicePluginReadyLabel(ns, name), false, module));
  RETURN_IF_ERROR(SetNodeLabel(node, desired::ModuleReadyLabel(ns, name), false, module));
  for (const ObjectPtr& pod : observed.plugin_pods) {
    if (NodeOf(*pod) != node) continue;
    const std::string phase = PodPhase(*pod);
    if (phase == "Succeeded" || phase == "Failed") continue;
    // Without the ready label the DaemonSet controller stops the plugin; wait for it to go,
    // so the plugin holds no device of a module being unloaded, but not forever.
    if (!Terminating(*pod)) return false;
    if (Since(*pod, "deletionTimestamp", clock_.Now()) < kPluginStopDeadline) return false;
    events_.Record(object, kube::EventType::kWarning, "DevicePluginStopTimeout",
                   fmt::format("device plugin pod {} on {} has not stopped within {}; unloading "
                               "anyway (the unload is retried while a device is in use)",
                               NameOf(*pod), node, absl::FormatDuration(kPluginStopDeadline)));
  }
  return true;
}

absl::Status ModuleReconciler::CollectGarbage(const api::Module& module, const json& object,
                                              const desired::ModulePlan& plan,
                                              const Observed& observed, const Applied& applied,
                                              Rollout* rollout) {
  const std::string& ns = module.metadata.namespace_name;
  // DaemonSets no longer wanted (a kernel without nodes, a dropped plugin, an old version no
  // node runs): their nodes are drained before the pods go.
  for (const ObjectPtr& daemonset : observed.daemonsets) {
    const std::string ds_name(NameOf(*daemonset));
    if (applied.wanted.contains(ds_name) || applied.kept.contains(ds_name) ||
        Terminating(*daemonset)) {
      continue;
    }
    const std::string kernel_hash = Label(*daemonset, desired::kKernelHashLabel);
    bool drained = true;
    for (const ObjectPtr& pod : observed.loader_pods) {
      if (kernel_hash.empty() || Label(*pod, desired::kKernelHashLabel) != kernel_hash) continue;
      if (Terminating(*pod)) continue;  // already going (e.g. its node changed kernel)
      const std::string node = NodeOf(*pod);
      rollout->ready_nodes.erase(node);  // its loader is about to go
      ASSIGN_OR_RETURN(bool node_drained, DrainNode(module, object, observed, node));
      drained = drained && node_drained;
    }
    if (!drained) {
      rollout->in_transition = true;
      continue;
    }
    spdlog::info("Module {}/{}: deleting DaemonSet {}, no longer needed", ns, module.metadata.name,
                 ds_name);
    absl::Status deleted =
        client_.Delete(kube::resources::kDaemonSets, ns, ds_name, BackgroundDeletion());
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
  }
  // Without ordered upgrades, the nodes' loader version labels have no meaning any more.
  if (plan.version.empty()) {
    const std::string label = desired::LoaderVersionLabel(ns, module.metadata.name);
    for (const desired::NodeInfo& node : observed.nodes) {
      if (node.labels.contains(label))
        RETURN_IF_ERROR(SetNodeLabel(node.name, label, false, module));
    }
  }
  return absl::OkStatus();
}

absl::Status ModuleReconciler::ReplaceOutdatedPods(const api::Module& module, const json& object,
                                                   const desired::ModulePlan& plan,
                                                   const Observed& observed, Rollout* rollout) {
  (void)plan;
  // Outdated pods that are not Ready serve nothing: all of them are replaced at once, so a
  // fixed image or parameter reaches the nodes where the old one failed. Ready ones go one
  // node at a time, drained first, while no other replacement is under way.
  std::vector<ObjectPtr> replace = rollout->outdated_unready;
  if (replace.empty() && !rollout->replacement_in_flight) {
    for (const ObjectPtr& pod : rollout->outdated) {
      if (PodReady(*pod)) {
        replace.push_back(pod);
        break;
      }
    }
  }
  const std::string& ns = module.metadata.namespace_name;
  for (const ObjectPtr& pod : replace) {
    const std::string node = NodeOf(*pod);
    rollout->ready_nodes.erase(node);
    rollout->in_transition = true;
    ASSIGN_OR_RETURN(bool drained, DrainNode(module, object, observed, node));
    if (!drained) continue;
    if (PodReady(*pod)) {
      RETURN_IF_ERROR(SetNodeLabel(node, desired::ModuleUpdatingLabel(ns, module.metadata.name),
                                   true, module,
                                   std::to_string(absl::ToUnixSeconds(clock_.Now()))));
    }
    spdlog::info("Module {}/{}: replacing the outdated loader pod on {}", ns, module.metadata.name,
                 node);
    absl::Status deleted =
        client_.Delete(kube::resources::kPods, ns, std::string(NameOf(*pod)), {});
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
  }
  return absl::OkStatus();
}

absl::Status ModuleReconciler::MoveNodeVersions(const api::Module& module, const json& object,
                                                const desired::ModulePlan& plan,
                                                const Observed& observed, Rollout* rollout) {
  if (plan.version.empty()) return absl::OkStatus();
  const std::string& ns = module.metadata.namespace_name;
  const std::string& name = module.metadata.name;
  const std::string wanted_label = desired::ModuleVersionLabel(ns, name);
  const std::string loader_label = desired::LoaderVersionLabel(ns, name);
  std::set<std::string> nodes_with_loader_pods;
  for (const ObjectPtr& pod : observed.loader_pods) nodes_with_loader_pods.insert(NodeOf(*pod));
  for (const desired::NodeInfo& node : observed.nodes) {
    const std::string wanted = NodeLabel(node, wanted_label);   // set by an administrator
    const std::string running = NodeLabel(node, loader_label);  // what its DaemonSets select
    if (wanted == running) continue;
    rollout->in_transition = true;
    rollout->ready_nodes.erase(node.name);
    if (!running.empty()) {
      // Upstream's order: the device plugin leaves, then the old loader (which unloads).
      ASSIGN_OR_RETURN(bool drained, DrainNode(module, object, observed, node.name));
      if (!drained) continue;
      spdlog::info("Module {}/{}: node {} moves from version {} to {}; unloading {}", ns, name,
                   node.name, running, wanted.empty() ? "(none)" : wanted, running);
      RETURN_IF_ERROR(SetNodeLabel(node.name, loader_label, false, module));
      continue;
    }
    // The new version's loader starts only once the old one's unload is confirmed.
    if (nodes_with_loader_pods.contains(node.name)) continue;
    spdlog::info("Module {}/{}: node {} gets version {}", ns, name, node.name, wanted);
    RETURN_IF_ERROR(SetNodeLabel(node.name, loader_label, true, module, wanted));
  }
  return absl::OkStatus();
}

absl::Status ModuleReconciler::SetNodeLabels(const api::Module& module,
                                             const desired::ModulePlan& plan,
                                             const Observed& observed, const Rollout& rollout) {
  const std::string& ns = module.metadata.namespace_name;
  const std::string& name = module.metadata.name;
  const std::string ready_label = desired::ModuleReadyLabel(ns, name);
  const std::string plugin_label = desired::DevicePluginReadyLabel(ns, name);
  const std::string updating_label = desired::ModuleUpdatingLabel(ns, name);
  std::set<std::string> plugin_ready_nodes;
  if (plan.third_party_plugin) {
    for (const ObjectPtr& pod : observed.plugin_pods) {
      if (!Terminating(*pod) && PodReady(*pod)) plugin_ready_nodes.insert(NodeOf(*pod));
    }
  }
  for (const desired::NodeInfo& node : observed.nodes) {
    // A Module with only a device plugin has nothing to load: no ready label.
    const bool loaded = plan.has_module_loader && rollout.ready_nodes.contains(node.name);
    const bool plugin =
        plugin_ready_nodes.contains(node.name) && (loaded || !plan.has_module_loader);
    if (node.labels.contains(ready_label) != loaded) {
      RETURN_IF_ERROR(SetNodeLabel(node.name, ready_label, loaded, module));
    }
    if (node.labels.contains(plugin_label) != plugin) {
      RETURN_IF_ERROR(SetNodeLabel(node.name, plugin_label, plugin, module));
    }
    // The replacement is over once the node serves again, or has overrun its deadline.
    if (node.labels.contains(updating_label) &&
        (loaded || UpdatingSince(observed, module, node.name) >= kStartDeadline)) {
      RETURN_IF_ERROR(SetNodeLabel(node.name, updating_label, false, module));
    }
  }
  return absl::OkStatus();
}

desired::RolloutState ModuleReconciler::Summarize(const Observed& observed, const Applied& applied,
                                                  const Rollout& rollout) {
  desired::RolloutState state;
  state.in_transition = rollout.in_transition;
  std::set<std::string> counted;
  for (const ObjectPtr& daemonset : observed.daemonsets) {
    const std::string ds_name(NameOf(*daemonset));
    if (!applied.wanted.contains(ds_name) && !applied.kept.contains(ds_name)) continue;
    counted.insert(ds_name);
    const json status = daemonset->value("status", json::object());
    // Until the DaemonSet controller has seen this generation, its counts are not the
    // DaemonSet's (a new one reports 0 of 0, which would read as loaded everywhere).
    const json& generation = kube::FieldAt(*daemonset, {"metadata", "generation"});
    if (generation.is_number_integer() &&
        status.value("observedGeneration", int64_t{0}) < generation.get<int64_t>()) {
      state.in_transition = true;
    }
    const bool loader = Label(*daemonset, desired::kComponentLabel) == desired::kLoaderComponent;
    (loader ? state.loaders_desired : state.plugins_desired) +=
        status.value("desiredNumberScheduled", 0);
    (loader ? state.loaders_available : state.plugins_available) +=
        status.value("numberAvailable", 0);
  }
  // A DaemonSet applied in this reconcile that the cache has not shown yet: not counted, so
  // the counts say nothing about it.
  for (const std::string& name : applied.wanted) {
    if (!counted.contains(name)) state.in_transition = true;
  }
  state.outdated = static_cast<int>(rollout.outdated.size());
  state.problems = rollout.problems;
  state.images = applied.images;
  return state;
}

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
  json status = {
      {"conditions", WithTransitionTimes(
                         {Condition("Ready", false, "InvalidSpec", problem, generation),
                          Condition("Progressing", false, "InvalidSpec", "", generation),
                          Condition("Degraded", true, "InvalidSpec", problem, generation)},
                         object.value("status", json::object()).value("conditions", json::array()),
                         clock_.Now())}};
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
                                            bool present, const api::Module& module,
                                            const std::string& value) {
  ObjectPtr cached = caches_.nodes.Get(node);
  if (cached == nullptr) return absl::OkStatus();
  const json& current = kube::FieldAt(*cached, {"metadata", "labels", label});
  if (present ? (current.is_string() && current.get_ref<const std::string&>() == value)
              : current.is_null()) {
    return absl::OkStatus();
  }
  json patch = {{"metadata", {{"labels", {{label, present ? json(value) : json(nullptr)}}}}}};
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
  const int64_t generation = module.metadata.generation;
  const json previous_conditions =
      object.value("status", json::object()).value("conditions", json::array());
  auto write_progress = [&](std::vector<desired::NodeProblem> nodes, std::string message) {
    return WriteStatus(
        object, {{"nodes", desired::ListedNodes(nodes)},
                 {"nodesWithProblemsNumber", static_cast<int>(nodes.size())},
                 {"conditions",
                  WithTransitionTimes(
                      {Condition("Ready", false, "Deleting", "unloading on every node", generation),
                       Condition("Progressing", true, "Deleting", std::move(message), generation)},
                      previous_conditions, clock_.Now())}});
  };
  // Third-party plugin pods leave first, so none holds a device of a module being unloaded:
  // the labels they run on go, then their DaemonSet; the loaders wait for them (bounded).
  for (const ObjectPtr& node : caches_.nodes.List()) {
    const std::string node_name(NameOf(*node));
    RETURN_IF_ERROR(
        SetNodeLabel(node_name, desired::DevicePluginReadyLabel(ns, name), false, module));
    RETURN_IF_ERROR(SetNodeLabel(node_name, desired::ModuleReadyLabel(ns, name), false, module));
  }
  std::vector<ObjectPtr> daemonsets = Owned(caches_.daemonsets, ns, name, "");
  for (const ObjectPtr& daemonset : daemonsets) {
    if (Terminating(*daemonset) ||
        Label(*daemonset, desired::kComponentLabel) != desired::kDevicePluginComponent) {
      continue;
    }
    absl::Status deleted = client_.Delete(kube::resources::kDaemonSets, ns,
                                          std::string(NameOf(*daemonset)), BackgroundDeletion());
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
  }
  Observed observed;
  observed.plugin_pods = Owned(caches_.pods, ns, name, desired::kDevicePluginComponent);
  std::vector<desired::NodeProblem> stopping_plugins;
  std::set<std::string> plugin_nodes;
  for (const ObjectPtr& pod : observed.plugin_pods) plugin_nodes.insert(NodeOf(*pod));
  for (const std::string& node : plugin_nodes) {
    ASSIGN_OR_RETURN(bool drained, DrainNode(module, object, observed, node));
    if (!drained) {
      stopping_plugins.push_back({node, "Unloading", "waiting for the device plugin pod to stop"});
    }
  }
  if (!stopping_plugins.empty()) {
    RETURN_IF_ERROR(write_progress(
        stopping_plugins,
        fmt::format("{} device plugin pods still stopping", stopping_plugins.size())));
    return kube::Result{false, kProgressRecheck};
  }
  for (const ObjectPtr& daemonset : daemonsets) {
    if (Terminating(*daemonset)) continue;
    absl::Status deleted = client_.Delete(kube::resources::kDaemonSets, ns,
                                          std::string(NameOf(*daemonset)), BackgroundDeletion());
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
  }
  std::vector<ObjectPtr> pods = Owned(caches_.pods, ns, name, desired::kLoaderComponent);
  if (!pods.empty()) {
    ASSIGN_OR_RETURN(std::vector<desired::NodeProblem> problems,
                     ConfirmUnloads(module, object, pods));
    for (const ObjectPtr& pod : pods) {  // not yet told to stop (their DaemonSet is going)
      if (!Terminating(*pod)) {
        problems.push_back({NodeOf(*pod), "Unloading", "the loader pod is being stopped"});
      }
    }
    RETURN_IF_ERROR(
        write_progress(problems, fmt::format("{} loader pods still unloading", pods.size())));
    return kube::Result{false, kProgressRecheck};
  }
  // Every node has unloaded: the version and update labels kmm set go too.
  for (const ObjectPtr& node : caches_.nodes.List()) {
    for (const std::string& label :
         {desired::LoaderVersionLabel(ns, name), desired::ModuleUpdatingLabel(ns, name)}) {
      RETURN_IF_ERROR(SetNodeLabel(std::string(NameOf(*node)), label, false, module));
    }
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

absl::StatusOr<std::vector<desired::NodeProblem>> ModuleReconciler::ConfirmUnloads(
    const api::Module& module, const json& object, const std::vector<ObjectPtr>& loader_pods) {
  const std::string& ns = module.metadata.namespace_name;
  const absl::Duration unload_timeout = absl::Seconds(settings_.unload_timeout_seconds);
  std::vector<desired::NodeProblem> progress;
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
                           Since(*pod, "deletionTimestamp", clock_.Now()) > unload_timeout;
      progress.push_back(
          {node, blocked ? "UnloadBlocked" : "Unloading",
           loader_message.empty() ? "the loader is unloading the modules" : loader_message});
      continue;
    }
    if (node.empty() || caches_.nodes.Get(node) == nullptr) {
      spdlog::info("Module {}/{}: node {} is gone; nothing left to unload there", ns,
                   module.metadata.name, node.empty() ? "(none)" : node);
      RETURN_IF_ERROR(RemoveUnloadFinalizer(*pod));
      continue;
    }
    if (!exit_code) {
      const bool overdue = Since(*pod, "deletionTimestamp", clock_.Now()) > unload_timeout;
      progress.push_back(
          {node, overdue ? "UnloadBlocked" : "Unloading", "the loader is unloading the modules"});
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
        {node, "UnloadBlocked",
         fmt::format("{} (retrying in pod {})",
                     message.empty() ? "the loader was stopped before it unloaded" : message,
                     retry_name)});
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
