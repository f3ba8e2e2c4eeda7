#include "operator/desired/plan.h"

#include "fmt/format.h"
#include "fmt/ranges.h"
#include "operator/desired/device_plugin_daemonset.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"
#include "operator/desired/node_selection.h"

namespace kmm::desired {

using nlohmann::json;

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
  if (module.spec.module_loader) {
    for (const KernelGroup& group : GroupTargetNodes(module, infos)) {
      if (!group.mapping) {
        plan.warnings.push_back(fmt::format(
            "Module {}/{}: no kernel mapping matches kernel {} (nodes: {}); those nodes get no "
            "loader until a mapping (literal or regexp) covers it",
            module.metadata.namespace_name, module.metadata.name, group.kernel,
            fmt::join(group.nodes, ", ")));
        continue;
      }
      items.push_back(LoaderDaemonSetFor(module, *group.mapping, group.kernel, settings));
    }
  }
  if (HasThirdPartyDevicePlugin(module))
    items.push_back(DevicePluginDaemonSetFor(module, settings));
  plan.list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}};
  return plan;
}

}  // namespace kmm::desired
