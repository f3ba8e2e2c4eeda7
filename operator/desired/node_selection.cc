#include "operator/desired/node_selection.h"

#include <algorithm>
#include <set>

namespace kmm::desired {
namespace {

using nlohmann::json;

// Taints every DaemonSet pod tolerates (the DaemonSet controller adds these tolerations).
const std::set<std::string> kDaemonSetTolerated = {
    "node.kubernetes.io/not-ready",      "node.kubernetes.io/unreachable",
    "node.kubernetes.io/disk-pressure",  "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",   "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/network-unavailable",
};

bool Tolerates(const json& toleration, const json& taint) {
  const std::string effect = toleration.value("effect", "");
  if (!effect.empty() && effect != taint.value("effect", "")) return false;
  const std::string key = toleration.value("key", "");
  const std::string op = toleration.value("operator", "Equal");
  if (op == "Exists") return key.empty() || key == taint.value("key", "");
  return key == taint.value("key", "") && toleration.value("value", "") == taint.value("value", "");
}

}  // namespace

NodeInfo NodeInfoFrom(const json& node) {
  NodeInfo info;
  const json metadata = node.value("metadata", json::object());
  info.name = metadata.value("name", "");
  const json labels = metadata.value("labels", json::object());
  for (const auto& [key, value] : labels.items()) {
    if (value.is_string()) info.labels[key] = value.get<std::string>();
  }
  const json node_info = node.value("status", json::object()).value("nodeInfo", json::object());
  info.kernel = node_info.value("kernelVersion", "");
  const json taints = node.value("spec", json::object()).value("taints", json::array());
  if (taints.is_array()) info.taints.assign(taints.begin(), taints.end());
  return info;
}

std::vector<std::string> NodeFields() {
  return {"/metadata/labels", "/spec/taints", "/status/nodeInfo/kernelVersion"};
}

bool SelectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels) {
  return std::all_of(selector.begin(), selector.end(), [&](const auto& entry) {
    auto it = labels.find(entry.first);
    return it != labels.end() && it->second == entry.second;
  });
}

bool ToleratesTaints(const std::vector<json>& tolerations, const std::vector<json>& taints) {
  for (const json& taint : taints) {
    const std::string effect = taint.value("effect", "");
    if (effect != "NoSchedule" && effect != "NoExecute") continue;
    if (kDaemonSetTolerated.contains(taint.value("key", ""))) continue;
    if (std::none_of(tolerations.begin(), tolerations.end(),
                     [&](const json& toleration) { return Tolerates(toleration, taint); })) {
      return false;
    }
  }
  return true;
}

std::vector<KernelGroup> GroupTargetNodes(const api::Module& module,
                                          const std::vector<NodeInfo>& nodes) {
  std::map<std::string, std::vector<std::string>> by_kernel;
  for (const NodeInfo& node : nodes) {
    if (node.kernel.empty()) continue;
    if (!SelectorMatches(module.spec.selector, node.labels)) continue;
    if (!ToleratesTaints(module.spec.tolerations, node.taints)) continue;
    by_kernel[node.kernel].push_back(node.name);
  }
  std::vector<KernelGroup> groups;
  for (auto& [kernel, names] : by_kernel) {
    std::sort(names.begin(), names.end());
    groups.push_back({kernel, std::move(names), api::FindKernelMapping(module, kernel)});
  }
  return groups;
}

}  // namespace kmm::desired
