#include "operator/desired/plan.h"

#include <map>

#include "fmt/format.h"
#include "fmt/ranges.h"
#include "operator/desired/device_plugin_daemonset.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"
#include "operator/desired/module_status.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

void WarnIfUntagged(std::string_view what, const std::string& image,
                    std::vector<std::string>* warnings) {
  if (image.empty() || ImageHasExplicitTag(image)) return;
  warnings->push_back(fmt::format(
      "{} \"{}\" has no tag, so the container runtime pulls \"{}:latest\", which can change "
      "under running nodes; name a tag or digest",
      what, image, image));
}

}  // namespace

bool ImageHasExplicitTag(std::string_view image) {
  if (image.find('@') != std::string_view::npos) return true;
  const size_t slash = image.rfind('/');
  const std::string_view last = slash == std::string_view::npos ? image : image.substr(slash + 1);
  return last.find(':') != std::string_view::npos;
}

std::vector<UnsupportedField> UnsupportedFieldsOf(const api::Module& module) {
  std::vector<UnsupportedField> fields;
  if (module.spec.dra) {
    fields.push_back({"spec.dra",
                      "kmm runs no DRA driver; expose the devices with spec.devicePlugin "
                      "(built in or your own) and remove spec.dra"});
  }
  return fields;
}

ModulePlan PlanFor(const api::Module& module, const std::vector<NodeInfo>& nodes) {
  ModulePlan plan;
  plan.has_module_loader = module.spec.module_loader.has_value();
  plan.third_party_plugin = HasThirdPartyDevicePlugin(module);
  plan.unsupported = UnsupportedFieldsOf(module);
  if (plan.has_module_loader) plan.version = module.spec.module_loader->container.version;
  const std::string version_label =
      ModuleVersionLabel(module.metadata.namespace_name, module.metadata.name);
  std::map<std::string_view, const std::map<std::string, std::string>*> labels_by_node;
  for (const NodeInfo& node : nodes) labels_by_node[node.name] = &node.labels;
  for (KernelGroup& group : GroupTargetNodes(module, nodes)) {
    plan.matching_nodes += static_cast<int>(group.nodes.size());
    if (!plan.has_module_loader) continue;  // nothing to load: no mapping needed
    if (!group.mapping) {
      plan.unmapped.push_back(std::move(group));
      continue;
    }
    if (!plan.version.empty()) {
      // Ordered upgrade: the version's loader goes only to nodes labelled for it.
      std::erase_if(group.nodes, [&](const std::string& node) {
        auto labels = labels_by_node.find(node);
        return labels == labels_by_node.end() ||
               labels->second->find(version_label) == labels->second->end() ||
               labels->second->at(version_label) != plan.version;
      });
    }
    WarnIfUntagged(fmt::format("the module image for kernel {}", group.kernel),
                   group.mapping->container_image, &plan.warnings);
    plan.loaders.push_back({group.kernel, std::move(group.nodes), std::move(*group.mapping)});
  }
  if (plan.third_party_plugin) {
    WarnIfUntagged("the device plugin image", module.spec.device_plugin->container->image,
                   &plan.warnings);
  }
  return plan;
}

Plan PlanModule(const api::Module& module, const std::vector<json>& nodes,
                const OperatorSettings& settings) {
  Plan plan;
  json items = json::array();
  std::vector<NodeInfo> infos;
  for (const json& node : nodes) {
    NodeInfo info = NodeInfoFrom(node);
    if (!info.kernel.empty()) {
      // The operator keeps every node's kernel label in sync; the DaemonSets select on it.
      const std::string value = KernelLabelValue(info.kernel);
      auto current = info.labels.find(std::string(kKernelVersionLabel));
      if (current == info.labels.end() || current->second != value) {
        items.push_back(
            {{"apiVersion", "v1"},
             {"kind", "Node"},
             {"metadata", {{"name", info.name}, {"labels", {{kKernelVersionLabel, value}}}}}});
        info.labels[std::string(kKernelVersionLabel)] = value;
      }
    } else {
      plan.warnings.push_back(fmt::format("node {} reports no kernel version yet", info.name));
    }
    infos.push_back(std::move(info));
  }
  const ModulePlan module_plan = PlanFor(module, infos);
  for (const KernelGroup& group : module_plan.unmapped) {
    plan.warnings.push_back(fmt::format(
        "Module {}/{}: no kernel mapping matches kernel {} (nodes: {}); those nodes get no "
        "loader until a mapping (literal or regexp) covers it",
        module.metadata.namespace_name, module.metadata.name, group.kernel,
        fmt::join(group.nodes, ", ")));
  }
  for (const std::string& warning : module_plan.warnings) {
    plan.warnings.push_back(fmt::format("Module {}/{}: {}", module.metadata.namespace_name,
                                        module.metadata.name, warning));
  }
  for (const UnsupportedField& field : module_plan.unsupported) {
    plan.warnings.push_back(fmt::format("Module {}/{}: {} is not supported yet: {}",
                                        module.metadata.namespace_name, module.metadata.name,
                                        field.field, field.advice));
  }
  for (const LoaderTarget& target : module_plan.loaders) {
    if (target.mapping.build || target.mapping.sign) {
      plan.warnings.push_back(fmt::format(
          "Module {}/{}: kernel {}: the operator first asks the registry for {}; if it is missing "
          "or was made from other inputs, a {} Job makes it, and this loader DaemonSet waits for "
          "it (it then pulls the image by digest)",
          module.metadata.namespace_name, module.metadata.name, target.kernel,
          target.mapping.container_image,
          target.mapping.build && target.mapping.sign ? "build, then a sign,"
          : target.mapping.build                      ? "build"
                                                      : "sign"));
    }
    items.push_back(LoaderDaemonSetFor(module, target.mapping, target.kernel, settings));
  }
  if (module_plan.third_party_plugin) items.push_back(DevicePluginDaemonSetFor(module, settings));
  plan.list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}};
  plan.expected_status =
      ModuleStatusFor(module_plan, ConvergedRollout(module_plan), module.metadata.generation);
  return plan;
}

}  // namespace kmm::desired
