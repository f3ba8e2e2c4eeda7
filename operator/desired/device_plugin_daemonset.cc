#include "operator/desired/device_plugin_daemonset.h"

#include "fmt/format.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

json Container(const api::ContainerSpec& spec, std::string_view name) {
  json container = {{"name", name}, {"image", spec.image}};
  if (!spec.image_pull_policy.empty()) container["imagePullPolicy"] = spec.image_pull_policy;
  if (!spec.command.empty()) container["command"] = spec.command;
  if (!spec.args.empty()) container["args"] = spec.args;
  if (!spec.env.empty()) container["env"] = spec.env;
  if (!spec.resources.is_null()) container["resources"] = spec.resources;
  if (!spec.volume_mounts.empty()) container["volumeMounts"] = spec.volume_mounts;
  return container;
}

}  // namespace

std::string DevicePluginDaemonSetName(std::string_view module_name) {
  return fmt::format("{}-device-plugin", module_name);
}

bool HasThirdPartyDevicePlugin(const api::Module& module) {
  return module.spec.device_plugin && module.spec.device_plugin->container &&
         !module.spec.device_plugin->container->image.empty();
}

json DevicePluginDaemonSetFor(const api::Module& module, const OperatorSettings& settings) {
  const api::DevicePluginSpec& plugin = *module.spec.device_plugin;
  json container = Container(*plugin.container, "device-plugin");
  // Device plugins register over the kubelet's socket directory; upstream runs them privileged.
  container["securityContext"] = {{"privileged", true}};
  if (!container.contains("volumeMounts")) container["volumeMounts"] = json::array();
  container["volumeMounts"].push_back(
      {{"name", "kubelet-device-plugins"}, {"mountPath", settings.device_plugin_dir}});

  json node_selector = json::object();
  for (const auto& [key, value] : module.spec.selector) node_selector[key] = value;
  // Where the module is loaded; a Module with only a device plugin loads nothing, and its
  // plugin runs wherever the selector says (as upstream).
  if (module.spec.module_loader) {
    node_selector[ModuleReadyLabel(module.metadata.namespace_name, module.metadata.name)] = "";
  }

  json volumes = plugin.volumes;
  if (!volumes.is_array()) volumes = json::array();
  volumes.push_back({{"name", "kubelet-device-plugins"},
                     {"hostPath", {{"path", settings.device_plugin_dir}, {"type", "Directory"}}}});
  json pod_spec = {
      {"nodeSelector", node_selector},
      {"containers", {container}},
      {"volumes", volumes},
  };
  if (!settings.priority_class.empty()) pod_spec["priorityClassName"] = settings.priority_class;
  if (plugin.init_container) {
    pod_spec["initContainers"] = {Container(*plugin.init_container, "device-plugin-init")};
  }
  if (!module.spec.tolerations.empty()) pod_spec["tolerations"] = module.spec.tolerations;
  if (!plugin.service_account_name.empty())
    pod_spec["serviceAccountName"] = plugin.service_account_name;
  if (plugin.automount_service_account_token) {
    pod_spec["automountServiceAccountToken"] = *plugin.automount_service_account_token;
  }
  if (module.spec.image_repo_secret && !module.spec.image_repo_secret->name.empty()) {
    pod_spec["imagePullSecrets"] = {{{"name", module.spec.image_repo_secret->name}}};
  }
  const json labels = {{kModuleNameLabel, module.metadata.name},
                       {kComponentLabel, kDevicePluginComponent},
                       {kManagedByLabel, kManagedByValue}};
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "DaemonSet"},
      {"metadata",
       {{"name", DevicePluginDaemonSetName(module.metadata.name)},
        {"namespace", module.metadata.namespace_name},
        {"labels", labels},
        {"ownerReferences", {OwnerReferenceTo(module)}}}},
      {"spec",
       {{"selector",
         {{"matchLabels",
           {{kModuleNameLabel, module.metadata.name}, {kComponentLabel, kDevicePluginComponent}}}}},
        {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod_spec}}}}},
  };
}

}  // namespace kmm::desired
