// Which nodes a Module targets and how they group by kernel: nodes whose labels match
// spec.selector and whose taints the Module tolerates (as the DaemonSet controller would
// decide), grouped by status.nodeInfo.kernelVersion, each kernel with its mapping if any.
#ifndef KMM_OPERATOR_DESIRED_NODE_SELECTION_H_
#define KMM_OPERATOR_DESIRED_NODE_SELECTION_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "operator/api/kernel_mapping.h"
#include "operator/api/module.h"

namespace kmm::desired {

// What the operator reads of a Node (see NodeFields for the informer transform).
struct NodeInfo {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string kernel;  // status.nodeInfo.kernelVersion, as reported
  std::vector<nlohmann::json> taints;
};

NodeInfo NodeInfoFrom(const nlohmann::json& node);

// The JSON paths of a Node the operator needs, for KeepFields.
std::vector<std::string> NodeFields();

bool SelectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels);

// Whether pods with `tolerations` may run on a node with `taints`. NoSchedule and NoExecute
// taints must be tolerated, except those the DaemonSet controller tolerates for every
// DaemonSet pod (unschedulable, not-ready, unreachable, pressure, network-unavailable).
bool ToleratesTaints(const std::vector<nlohmann::json>& tolerations,
                     const std::vector<nlohmann::json>& taints);

struct KernelGroup {
  std::string kernel;
  std::vector<std::string> nodes;               // sorted
  std::optional<api::ResolvedMapping> mapping;  // nullopt: no mapping for this kernel
};

// The Module's target nodes grouped by kernel, sorted by kernel. Nodes that report no kernel
// yet are left out.
std::vector<KernelGroup> GroupTargetNodes(const api::Module& module,
                                          const std::vector<NodeInfo>& nodes);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_NODE_SELECTION_H_
