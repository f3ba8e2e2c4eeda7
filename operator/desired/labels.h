// The labels and names kmm puts on Nodes, DaemonSets and pods. Node label keys follow
// upstream KMM (kmm.node.kubernetes.io/...), so tooling written for upstream keeps working.
#ifndef KMM_OPERATOR_DESIRED_LABELS_H_
#define KMM_OPERATOR_DESIRED_LABELS_H_

#include <string>
#include <string_view>

namespace kmm::desired {

// On every Node: its kernel (status.nodeInfo.kernelVersion) as a label value, so loader
// DaemonSets can select the nodes of one kernel.
inline constexpr std::string_view kKernelVersionLabel =
    "kmm.node.kubernetes.io/kernel-version.full";

// On our DaemonSets and their pods.
inline constexpr std::string_view kModuleNameLabel = "kmm.sigs.x-k8s.io/module";
inline constexpr std::string_view kComponentLabel =
    "kmm.sigs.x-k8s.io/component";  // loader|device-plugin
inline constexpr std::string_view kKernelHashLabel = "kmm.sigs.x-k8s.io/kernel-hash";
// On loader DaemonSets of a Module with spec.moduleLoader.container.version: that version.
inline constexpr std::string_view kModuleVersionLabel = "kmm.sigs.x-k8s.io/module-version";
inline constexpr std::string_view kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByValue = "kmm-operator";
// On loader pod templates: a hash of the template, to tell an outdated pod from a current one
// (DaemonSets use OnDelete, so the operator replaces pods itself).
inline constexpr std::string_view kTemplateHashAnnotation = "kmm.sigs.x-k8s.io/template-hash";
// On our DaemonSets: a hash of the object we applied, so an unchanged one is not applied again.
inline constexpr std::string_view kDesiredHashAnnotation = "kmm.sigs.x-k8s.io/desired-hash";
inline constexpr std::string_view kLoaderComponent = "loader";
inline constexpr std::string_view kDevicePluginComponent = "device-plugin";
// Pods that retry an unload a loader pod gave up on (desired/unload_pod.h).
inline constexpr std::string_view kUnloaderComponent = "unloader";

// Keeps the Module until every loader pod is gone (its modules unloaded).
inline constexpr std::string_view kModuleFinalizer = "kmm.sigs.x-k8s.io/module-loaded";
// On every loader pod, from its DaemonSet's template: a stopped loader pod stays, with its exit
// code and termination message, until the operator has seen the unload confirmed, so a loader
// that gave up on a busy module cannot disappear with the module still loaded.
inline constexpr std::string_view kUnloadFinalizer = "kmm.sigs.x-k8s.io/unload-confirmed";

// The node label that says a Module's modules are loaded there:
// kmm.node.kubernetes.io/<namespace>.<name>.ready (upstream's name).
std::string ModuleReadyLabel(std::string_view ns, std::string_view name);
// ... and that its third-party device plugin runs there (upstream's).
std::string DevicePluginReadyLabel(std::string_view ns, std::string_view name);
// Ours, on a node whose Ready loader pod the operator replaced, until the new one is Ready: the
// time (Unix seconds) it did. Only such a node holds back the next replacement; a node whose
// pod was not Ready before never does.
std::string ModuleUpdatingLabel(std::string_view ns, std::string_view name);
// The user-set label for ordered upgrades: the version of the Module a node should run.
std::string ModuleVersionLabel(std::string_view ns, std::string_view name);
// The label the operator sets from it, one step at a time (upstream's internal
// beta.kmm.node.kubernetes.io/version-module-loader.<ns>.<name>): the version whose loader
// DaemonSet runs on the node. It changes only once the old version's unload is confirmed.
std::string LoaderVersionLabel(std::string_view ns, std::string_view name);

// A label value for a kernel version, as the kernel mappings see it (one trailing '+' removed,
// so a COS node's "5.10.109+" reads "5.10.109"): kernels are already valid values almost always;
// any other character becomes '_', and one longer than 63 characters is cut and suffixed with a
// hash so that different kernels never share a value.
std::string KernelLabelValue(std::string_view kernel);

// A stable 64-bit FNV-1a hash of `text` as 16 hex digits, for inputs hashes (build_job.h).
std::string InputsHash(std::string_view text);

// Its first 10 hex digits, for names and labels.
std::string ShortHash(std::string_view text);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_LABELS_H_
