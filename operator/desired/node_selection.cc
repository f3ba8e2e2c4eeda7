#include "operator/desired/node_selection.h"

#include <algorithm>
#include <set>

namespace kmm::desired {
namespace {

using nlohmann::json;

// Taints every DaemonSet pod tolerates (the DaemonSet controller adds these tolerations).
const std::set<std::string> kDaemonSetTolerated = {
    "node.kubernetes.io/not-ready",           "node.kubernetes.io/unreachable",
    "node.kubernetes.io/disk-pressure",       "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",        "node.kubernetes.io/unschedulable",
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
  // References into the cached object: no copies (this runs for every node on every reconcile).
  static const json kNull;
  auto at = [](const json& object, const char* key) -> const json& {
    if (!object.is_object()) return kNull;
    auto it = object.find(key);
    return it == object.end() ? kNull : *it;
  };
  const json& metadata = at(node, "metadata");
  if (const json& name = at(metadata, "name"); name.is_string())
    info.name = name.get<std::string>();
  if (const json& labels = at(metadata, "labels"); labels.is_object()) {
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (it->is_string()) info.labels.emplace(it.key(), it->get<std::string>());
    }
  }
  if (const json& kernel = at(at(at(node, "status"), "nodeInfo"), "kernelVersion");
      kernel.is_string()) {
    info.kernel = kernel.get<std::string>();
  }
  if (const json& taints = at(at(node, "spec"), "taints"); taints.is_array()) {
    info.taints.assign(taints.begin(), taints.end());
  }
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
