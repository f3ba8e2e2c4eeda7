// The `Module` custom resource (kmm.sigs.x-k8s.io/v1beta1), field for field as upstream KMM
// defines it, plus our optional extensions. The operator's controllers parse every Module they
// read with ParseModule and write status back with ToJson.
//
// Kubernetes core sub-objects that the operator only copies into the Pods it creates (env,
// resources, volumeMounts, volumes, tolerations) stay JSON after a shape check; everything KMM
// itself interprets is a typed field. Field comments give the JSON name where it differs.
#ifndef KMM_OPERATOR_API_MODULE_H_
#define KMM_OPERATOR_API_MODULE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kmm::api {

inline constexpr std::string_view kGroup = "kmm.sigs.x-k8s.io";
inline constexpr std::string_view kApiVersion = "kmm.sigs.x-k8s.io/v1beta1";
inline constexpr std::string_view kKind = "Module";
// The CRD's default for spec.moduleLoader.container.modprobe.dirName; ParseModule applies it.
inline constexpr std::string_view kDefaultDirName = "/opt";

using StringMap = std::map<std::string, std::string>;

// The subset of metav1.ObjectMeta the operator reads; every other metadata field
// (creationTimestamp, ownerReferences, managedFields, ...) is kept verbatim in `other`.
struct ObjectMeta {
  std::string name;
  std::string namespace_name;  // "namespace"
  std::string uid;
  std::string resource_version;  // "resourceVersion"
  int64_t generation = 0;
  std::string deletion_timestamp;  // "deletionTimestamp", RFC 3339; empty unless being deleted
  std::vector<std::string> finalizers;
  StringMap labels;
  StringMap annotations;
  nlohmann::json other = nlohmann::json::object();

  bool operator==(const ObjectMeta&) const = default;
};

// core/v1 LocalObjectReference.
struct LocalObjectReference {
  std::string name;
  bool operator==(const LocalObjectReference&) const = default;
};

struct TLSOptions {
  bool insecure = false;
  bool insecure_skip_tls_verify = false;  // "insecureSkipTLSVerify"
  bool operator==(const TLSOptions&) const = default;
};

struct BuildArg {
  std::string name;
  std::string value;
  bool operator==(const BuildArg&) const = default;
};

struct KanikoParams {
  std::string tag;
  bool operator==(const KanikoParams&) const = default;
};

// In-cluster build settings (module-wide defaults or a kernel mapping's override).
struct Build {
  std::vector<BuildArg> build_args;                   // "buildArgs"
  LocalObjectReference dockerfile_config_map;         // "dockerfileConfigMap", required
  std::optional<TLSOptions> base_image_registry_tls;  // "baseImageRegistryTLS"
  std::vector<LocalObjectReference> secrets;
  std::optional<KanikoParams> kaniko_params;  // "kanikoParams"
  StringMap selector;
  bool operator==(const Build&) const = default;
};

// In-cluster signing settings for Secure Boot.
struct Sign {
  std::string unsigned_image;                             // "unsignedImage"
  std::optional<TLSOptions> unsigned_image_registry_tls;  // "unsignedImageRegistryTLS"
  LocalObjectReference key_secret;                        // "keySecret", required
  LocalObjectReference cert_secret;                       // "certSecret", required
  std::vector<std::string> files_to_sign;                 // "filesToSign"
  bool operator==(const Sign&) const = default;
};

// One entry of spec.moduleLoader.container.kernelMappings: exactly one of `literal` and
// `regexp` (checked by ValidateModule); the other fields override the container's defaults.
struct KernelMapping {
  std::string literal;
  std::string regexp;
  std::string container_image;  // "containerImage"; empty means the container's default
  std::optional<Build> build;
  std::optional<Sign> sign;
  std::optional<TLSOptions> registry_tls;  // "registryTLS"
  // "inTreeModulesToRemove": set (even to an empty list) replaces the container's list.
  std::optional<std::vector<std::string>> in_tree_modules_to_remove;
  std::string in_tree_module_to_remove;  // "inTreeModuleToRemove", deprecated upstream
  bool operator==(const KernelMapping&) const = default;
};

struct ModprobeArgs {
  std::vector<std::string> load;
  std::vector<std::string> unload;
  bool operator==(const ModprobeArgs&) const = default;
};

struct ModprobeSpec {
  std::string module_name;  // "moduleName"; may be empty only when rawArgs is set
  std::vector<std::string> parameters;
  std::string dir_name = std::string(kDefaultDirName);  // "dirName"
  std::optional<ModprobeArgs> args;
  std::optional<ModprobeArgs> raw_args;  // "rawArgs"
  std::string firmware_path;             // "firmwarePath"
  // "modulesLoadingOrder": absent and empty differ (an empty list is invalid, as upstream).
  std::optional<std::vector<std::string>> modules_loading_order;
  bool operator==(const ModprobeSpec&) const = default;
};

struct ModuleLoaderContainerSpec {
  ModprobeSpec modprobe;
  std::vector<KernelMapping> kernel_mappings;  // "kernelMappings"
  std::string container_image;                 // "containerImage"
  std::string image_pull_policy;               // "imagePullPolicy"
  std::string version;                         // ordered upgrade: the version nodes are moved to
  std::optional<Build> build;
  std::optional<Sign> sign;
  std::optional<TLSOptions> registry_tls;                             // "registryTLS"
  std::optional<std::vector<std::string>> in_tree_modules_to_remove;  // "inTreeModulesToRemove"
  std::string in_tree_module_to_remove;  // "inTreeModuleToRemove", deprecated upstream
  bool operator==(const ModuleLoaderContainerSpec&) const = default;
};

struct ModuleLoaderSpec {
  ModuleLoaderContainerSpec container;
  std::string service_account_name;  // "serviceAccountName"
  bool operator==(const ModuleLoaderSpec&) const = default;
};

// Upstream's CommonContainerSpec (alias DevicePluginContainerSpec).
struct ContainerSpec {
  std::string image;
  std::string image_pull_policy;  // "imagePullPolicy"
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<nlohmann::json> env;            // core/v1 EnvVar objects
  nlohmann::json resources;                   // core/v1 ResourceRequirements; null if absent
  std::vector<nlohmann::json> volume_mounts;  // "volumeMounts", core/v1 VolumeMount objects
  bool operator==(const ContainerSpec&) const = default;
};

struct DevicePluginSpec {
  // Required upstream; may be omitted here when `builtin` is set.
  std::optional<ContainerSpec> container;
  std::optional<ContainerSpec> init_container;          // "initContainer"
  std::string service_account_name;                     // "serviceAccountName"
  std::vector<nlohmann::json> volumes;                  // core/v1 Volume objects
  std::optional<bool> automount_service_account_token;  // "automountServiceAccountToken"
  // Our extension, "builtin": the configuration of kmm's built-in device plugin (run inside
  // the loader pod), passed through as JSON and validated by the device plugin's own parser.
  // Null when absent.
  nlohmann::json builtin;
  bool operator==(const DevicePluginSpec&) const = default;
};

struct DeviceClassSpec {
  std::string name;
  std::vector<nlohmann::json> selectors;  // resource/v1 DeviceSelector objects
  std::vector<nlohmann::json> config;     // resource/v1 DeviceClassConfiguration objects
  bool operator==(const DeviceClassSpec&) const = default;
};

// Upstream's spec.dra (a DRA driver DaemonSet instead of a device plugin).
struct DraSpec {
  ContainerSpec container;
  std::optional<ContainerSpec> init_container;  // "initContainer"
  std::string service_account_name;             // "serviceAccountName"
  std::vector<nlohmann::json> volumes;
  std::optional<bool> automount_service_account_token;  // "automountServiceAccountToken"
  std::string driver_name;                              // "driverName", required
  std::vector<DeviceClassSpec> device_classes;          // "deviceClasses"
  bool operator==(const DraSpec&) const = default;
};

struct ModuleSpec {
  std::optional<ModuleLoaderSpec> module_loader;  // "moduleLoader"
  std::optional<DevicePluginSpec> device_plugin;  // "devicePlugin"
  std::optional<DraSpec> dra;
  std::optional<LocalObjectReference> image_repo_secret;    // "imageRepoSecret"
  StringMap selector;                                       // required (may be empty)
  std::vector<nlohmann::json> tolerations;                  // core/v1 Toleration objects
  std::optional<int64_t> image_rebuild_trigger_generation;  // "imageRebuildTriggerGeneration"
  bool operator==(const ModuleSpec&) const = default;
};

struct DaemonSetStatus {
  int32_t nodes_matching_selector_number = 0;  // "nodesMatchingSelectorNumber"
  int32_t desired_number = 0;                  // "desiredNumber"
  int32_t available_number = 0;                // "availableNumber"
  bool operator==(const DaemonSetStatus&) const = default;
};

// Status is written by the operator, not by users, so fields this type does not know (added by
// a newer operator, or by the controllers: conditions, per-node results) are kept in `other`
// rather than rejected: reading a Module must never fail on its own status.
struct ModuleStatus {
  DaemonSetStatus module_loader;  // "moduleLoader"
  DaemonSetStatus device_plugin;  // "devicePlugin"
  DaemonSetStatus dra;
  std::optional<int64_t> image_rebuild_trigger_generation;  // "imageRebuildTriggerGeneration"
  nlohmann::json other = nlohmann::json::object();
  bool operator==(const ModuleStatus&) const = default;
};

struct Module {
  ObjectMeta metadata;
  ModuleSpec spec;
  ModuleStatus status;
  bool operator==(const Module&) const = default;
};

// Decodes a Module as Kubernetes' strict decoding would: a field this type does not define
// (outside metadata and status) or a value of the wrong type is an error naming its JSON path,
// e.g. "spec.moduleLoader.container.kernelMappings[1].regexp: expected a string, got an
// integer (5)". Every problem is reported, joined by "; ", in one InvalidArgument status
// prefixed with the Module's name ("Module kmm-ci/kmm-ci-a: ...").
// Applies the CRD's defaults (dirName "/opt"). Semantic rules are ValidateModule's job.
absl::StatusOr<Module> ParseModule(const nlohmann::json& object);

// Only the metadata of a Module, leniently: what the operator needs to let a Module whose spec
// it cannot read be deleted.
ObjectMeta ParseModuleMetadata(const nlohmann::json& object);

// The Module as JSON, with apiVersion and kind, omitting empty optional fields;
// ParseModule(ToJson(m)) == m.
nlohmann::json ToJson(const Module& module);

// Pieces of ToJson for the controllers that write a Module's status or copy one part of it.
nlohmann::json ToJson(const ModuleStatus& status);
nlohmann::json ToJson(const Build& build);
nlohmann::json ToJson(const Sign& sign);
nlohmann::json ToJson(const TLSOptions& tls);
nlohmann::json ToJson(const ContainerSpec& container);

}  // namespace kmm::api

#endif  // KMM_OPERATOR_API_MODULE_H_
