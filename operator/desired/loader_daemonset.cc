#include "operator/desired/loader_daemonset.h"

#include <algorithm>
#include <vector>

#include "fmt/format.h"
#include "loader/modprobe_command.h"
#include "operator/desired/labels.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

constexpr std::string_view kModulesVolume = "kmm-modules";  // the copy out of the image
constexpr std::string_view kModulesMount = "/kmm-modules";
constexpr std::string_view kToolsVolume = "kmm-tools";  // kmm-copy for the module image
constexpr std::string_view kToolsMount = "/kmm-tools";
constexpr std::string_view kHostRoot = "/host";  // the host's /lib/modules below it
constexpr std::string_view kConfigEnv = "KMM_LOADER_CONFIG";
constexpr std::string_view kLoaderBinary = "/usr/bin/kmm-loader";
constexpr std::string_view kCopyBinary = "/usr/bin/kmm-copy";
constexpr std::string_view kSecurityFs = "/sys/kernel/security";

std::string JoinPath(std::string_view a, std::string_view b) {
  if (b.empty()) return std::string(a);
  if (!a.empty() && a.back() == '/') a.remove_suffix(1);
  if (b.front() == '/') b.remove_prefix(1);
  return fmt::format("{}/{}", a, b);
}

std::string ParentPath(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return "";
  return std::string(path.substr(0, slash));
}

json HostPathVolume(std::string_view name, std::string_view path, std::string_view type) {
  return {{"name", name}, {"hostPath", {{"path", path}, {"type", type}}}};
}

json VolumeMount(std::string_view name, std::string_view path, bool read_only) {
  json mount = {{"name", name}, {"mountPath", path}};
  if (read_only) mount["readOnly"] = true;
  return mount;
}

json Labels(const api::Module& module, std::string_view kernel_hash) {
  return {{kModuleNameLabel, module.metadata.name},
          {kComponentLabel, kLoaderComponent},
          {kKernelHashLabel, kernel_hash},
          {kManagedByLabel, kManagedByValue}};
}

// args or rawArgs with every -d/--dirname pointing into the pod's copy, as dirName does: the
// copy-modules container puts the image's <dir>/lib/modules/<kernel> at kModulesMount + <dir>.
// Done here, not in the loader, because only the operator knows where the copy is and that the
// path was the image's: the loader cannot tell an image path from a host one.
loader::ModprobeArgs InPodCopy(const api::ModprobeArgs& args) {
  auto into_copy = [](std::string_view dir) { return JoinPath(kModulesMount, dir); };
  return {loader::MapModprobeDirNames(args.load, into_copy),
          loader::MapModprobeDirNames(args.unload, into_copy)};
}

// The plugin writes a CDI spec per resource with cdi.enabled into its specDir, which the
// container runtime reads on the host: each such directory is mounted read-write at its own
// path, once, and created if the node has none yet.
void AddCdiSpecDirs(const deviceplugin::DevicePluginConfig& plugin, json& mounts, json& volumes) {
  std::vector<std::string> dirs;
  for (const deviceplugin::ResourceConfig& resource : plugin.resources) {
    const std::string& dir = resource.cdi.spec_dir;
    if (resource.cdi.enabled && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
      dirs.push_back(dir);
    }
  }
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string name = i == 0 ? "cdi-specs" : fmt::format("cdi-specs-{}", i);
    mounts.push_back(VolumeMount(name, dirs[i], false));
    volumes.push_back(HostPathVolume(name, dirs[i], "DirectoryOrCreate"));
  }
}

// spec.devicePlugin.builtin as the loader will read it. ValidateModule refuses a builtin the
// parser refuses; should one get here anyway, the loader gets a plugin with no resources and
// refuses it by name in its termination message, rather than the plugin being dropped.
deviceplugin::DevicePluginConfig BuiltinDevicePlugin(const api::Module& module) {
  absl::StatusOr<deviceplugin::DevicePluginConfig> plugin = deviceplugin::ParseDevicePluginConfig(
      module.spec.device_plugin->builtin, "spec.devicePlugin.builtin");
  return plugin.ok() ? *std::move(plugin) : deviceplugin::DevicePluginConfig{};
}

}  // namespace

std::string LoaderDaemonSetName(std::string_view module_name, std::string_view kernel,
                                std::string_view version) {
  const std::string key =
      version.empty() ? std::string(kernel) : fmt::format("{}\n{}", kernel, version);
  return fmt::format("{}-loader-{}", module_name, ShortHash(key));
}

bool UsesBuiltinDevicePlugin(const api::Module& module) {
  return module.spec.device_plugin && !module.spec.device_plugin->builtin.is_null();
}

json OwnerReferenceTo(const api::Module& module) {
  return {{"apiVersion", "kmm.sigs.x-k8s.io/v1beta1"},
          {"kind", "Module"},
          {"name", module.metadata.name},
          {"uid", module.metadata.uid},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

loader::LoaderConfig LoaderConfigFor(const api::Module& module, const api::ResolvedMapping& mapping,
                                     std::string_view kernel, const OperatorSettings& settings) {
  const api::ModprobeSpec& modprobe = module.spec.module_loader->container.modprobe;
  loader::LoaderConfig config;
  config.module_name = modprobe.module_name;
  config.dir_name = JoinPath(kModulesMount, modprobe.dir_name);
  config.parameters = modprobe.parameters;
  if (modprobe.args) config.args = InPodCopy(*modprobe.args);
  if (modprobe.raw_args) config.raw_args = InPodCopy(*modprobe.raw_args);
  if (modprobe.modules_loading_order) {
    config.modules_loading_order = *modprobe.modules_loading_order;
  }
  if (!modprobe.firmware_path.empty()) {
    config.firmware_path = modprobe.firmware_path;
    config.firmware_host_path = settings.firmware_host_path;
  }
  config.in_tree_modules_to_remove = mapping.in_tree_modules_to_remove;
  config.kernel_version = std::string(kernel);
  if (UsesBuiltinDevicePlugin(module)) config.device_plugin = BuiltinDevicePlugin(module);
  return config;
}

json LoaderDaemonSetFor(const api::Module& module, const api::ResolvedMapping& mapping,
                        std::string_view kernel, const OperatorSettings& settings) {
  const api::ModuleLoaderSpec& loader = *module.spec.module_loader;
  const api::ModprobeSpec& modprobe = loader.container.modprobe;
  const std::string& version = loader.container.version;
  const std::string kernel_hash =
      ShortHash(version.empty() ? std::string(kernel) : fmt::format("{}\n{}", kernel, version));
  const bool builtin_plugin = UsesBuiltinDevicePlugin(module);
  const bool firmware = !modprobe.firmware_path.empty();
  const loader::LoaderConfig config = LoaderConfigFor(module, mapping, kernel, settings);

  // Init containers: install kmm-copy, then copy the kernel's modules (and firmware) out of
  // the module image.
  const std::string copy = JoinPath(kToolsMount, "kmm-copy");
  const std::string image_dir = modprobe.dir_name;
  json module_image_container = {
      {"name", "copy-modules"},
      {"image", mapping.container_image},
      {"command",
       {copy, JoinPath(image_dir, fmt::format("lib/modules/{}", kernel)),
        JoinPath(kModulesMount, JoinPath(image_dir, "lib/modules"))}},
      {"volumeMounts",
       {VolumeMount(kToolsVolume, kToolsMount, true),
        VolumeMount(kModulesVolume, kModulesMount, false)}},
  };
  if (!loader.container.image_pull_policy.empty()) {
    module_image_container["imagePullPolicy"] = loader.container.image_pull_policy;
  }
  json init_containers = {
      {{"name", "install-kmm-copy"},
       {"image", settings.loader_image},
       {"imagePullPolicy", settings.loader_image_pull_policy},
       {"command", {kCopyBinary, kCopyBinary, kToolsMount}},
       {"volumeMounts", {VolumeMount(kToolsVolume, kToolsMount, false)}}},
      module_image_container,
  };
  if (firmware) {
    json firmware_container = module_image_container;
    firmware_container["name"] = "copy-firmware";
    const std::string firmware_in_image = JoinPath(image_dir, modprobe.firmware_path);
    firmware_container["command"] = {copy, firmware_in_image,
                                     JoinPath(kModulesMount, ParentPath(firmware_in_image))};
    init_containers.push_back(firmware_container);
  }

  json command = {kLoaderBinary,      "run",
                  "--config-env",     kConfigEnv,
                  "--host-root",      kHostRoot,
                  "--unload-timeout", std::to_string(settings.unload_timeout_seconds)};
  if (builtin_plugin) {
    command.push_back("--device-plugin-dir");
    command.push_back(settings.device_plugin_dir);
  }
  json mounts = {VolumeMount(kModulesVolume, kModulesMount, true),
                 VolumeMount("host-lib-modules", JoinPath(kHostRoot, "lib/modules"), true)};
  json volumes = {{{"name", kModulesVolume}, {"emptyDir", json::object()}},
                  {{"name", kToolsVolume}, {"emptyDir", json::object()}},
                  HostPathVolume("host-lib-modules", "/lib/modules", "Directory")};
  // The host's securityfs, read-only, so that a refused load can be explained by the kernel's
  // lockdown mode: a pod's own /sys has no securityfs, and only a privileged loader could
  // mount one. Unchecked type: a host without securityfs mounted gives an empty directory.
  mounts.push_back(VolumeMount("host-securityfs", kSecurityFs, true));
  volumes.push_back(HostPathVolume("host-securityfs", kSecurityFs, ""));
  if (firmware) {
    mounts.push_back(VolumeMount("host-firmware", settings.firmware_host_path, false));
    volumes.push_back(
        HostPathVolume("host-firmware", settings.firmware_host_path, "DirectoryOrCreate"));
  }
  if (builtin_plugin) {
    mounts.push_back(VolumeMount("device-plugins", settings.device_plugin_dir, false));
    mounts.push_back(VolumeMount("run-udev", "/run/udev", true));
    volumes.push_back(HostPathVolume("device-plugins", settings.device_plugin_dir, "Directory"));
    volumes.push_back(HostPathVolume("run-udev", "/run/udev", "DirectoryOrCreate"));
    AddCdiSpecDirs(*config.device_plugin, mounts, volumes);
  }
  json security = {{"runAsUser", 0}, {"capabilities", {{"add", {"SYS_MODULE"}}}}};
  // Pointing the kernel at the firmware directory writes /sys, which only a privileged
  // container may (upstream does the same).
  if (firmware) security["privileged"] = true;

  json loader_container = {
      {"name", "loader"},
      {"image", settings.loader_image},
      {"imagePullPolicy", settings.loader_image_pull_policy},
      {"command", command},
      {"env",
       {{{"name", kConfigEnv}, {"value", loader::SerializeLoaderConfig(config).dump()}},
        {{"name", "NODE_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "spec.nodeName"}}}}}}}},
      {"readinessProbe",
       {{"exec",
         {{"command",
           {kLoaderBinary, "status", "--config-env", kConfigEnv, "--host-root", kHostRoot}}}},
        {"periodSeconds", 10},
        {"failureThreshold", 1}}},
      {"resources", {{"requests", {{"cpu", "10m"}, {"memory", "32Mi"}}}}},
      {"securityContext", security},
      {"terminationMessagePolicy", "FallbackToLogsOnError"},
      {"volumeMounts", mounts},
  };

  json node_selector = json::object();
  for (const auto& [key, value] : module.spec.selector) node_selector[key] = value;
  node_selector[kKernelVersionLabel] = KernelLabelValue(kernel);
  if (!version.empty()) {
    // Ordered upgrade: nodes get this version's loader once the operator has moved them to
    // it, after an administrator asked for it (ModuleVersionLabel) and the old one unloaded.
    node_selector[LoaderVersionLabel(module.metadata.namespace_name, module.metadata.name)] =
        version;
  }

  json pod_spec = {
      {"nodeSelector", node_selector},
      {"terminationGracePeriodSeconds", settings.unload_timeout_seconds + 30},
      {"initContainers", init_containers},
      {"containers", {loader_container}},
      {"volumes", volumes},
  };
  if (!settings.priority_class.empty()) pod_spec["priorityClassName"] = settings.priority_class;
  if (!module.spec.tolerations.empty()) pod_spec["tolerations"] = module.spec.tolerations;
  if (!loader.service_account_name.empty())
    pod_spec["serviceAccountName"] = loader.service_account_name;
  if (module.spec.image_repo_secret && !module.spec.image_repo_secret->name.empty()) {
    pod_spec["imagePullSecrets"] = {{{"name", module.spec.image_repo_secret->name}}};
  }
  if (builtin_plugin) {
    // Kernel uevents reach only the host's network namespace.
    pod_spec["hostNetwork"] = true;
    pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet";
  }

  const json labels = Labels(module, kernel_hash);
  json pod_template = {{"metadata", {{"labels", labels}, {"finalizers", {kUnloadFinalizer}}}},
                       {"spec", pod_spec}};
  pod_template["metadata"]["annotations"] = {
      {kTemplateHashAnnotation, ShortHash(pod_template.dump())}};
  json daemonset_labels = labels;
  daemonset_labels[kKernelVersionLabel] = KernelLabelValue(kernel);
  if (!version.empty()) daemonset_labels[kModuleVersionLabel] = version;
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "DaemonSet"},
      {"metadata",
       {{"name", LoaderDaemonSetName(module.metadata.name, kernel, version)},
        {"namespace", module.metadata.namespace_name},
        {"labels", daemonset_labels},
        {"ownerReferences", {OwnerReferenceTo(module)}}}},
      {"spec",
       {{"selector",
         {{"matchLabels",
           {{kModuleNameLabel, module.metadata.name},
            {kComponentLabel, kLoaderComponent},
            {kKernelHashLabel, kernel_hash}}}}},
        {"updateStrategy", {{"type", "OnDelete"}}},
        {"template", pod_template}}},
  };
}

}  // namespace kmm::desired
