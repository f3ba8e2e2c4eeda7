// The one plan for a Module (docs/design.md §7.5): which nodes it targets, which loader
// DaemonSet each kernel gets, which kernels have no mapping, what it asks for that kmm does
// not do yet. Both the reconciler and `kmm-operator plan` start from PlanFor, so what the
// command prints is what the operator does.
#ifndef KMM_OPERATOR_DESIRED_PLAN_H_
#define KMM_OPERATOR_DESIRED_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "operator/api/module.h"
#include "operator/desired/node_selection.h"
#include "operator/desired/settings.h"

namespace kmm::desired {

// One loader DaemonSet: a kernel with a mapping, and the nodes running it.
struct LoaderTarget {
  std::string kernel;              // status.nodeInfo.kernelVersion, as the nodes report it
  std::vector<std::string> nodes;  // sorted
  api::ResolvedMapping mapping;
};

// A spec field the operator reads but does not act on yet, and what to do instead.
struct UnsupportedField {
  std::string field;  // e.g. spec.moduleLoader.container.build
  std::string advice;
};

struct ModulePlan {
  int matching_nodes = 0;             // nodes the selector and tolerations admit
  bool has_module_loader = false;     // false: a Module with only a device plugin
  std::vector<LoaderTarget> loaders;  // one per mapped kernel, sorted by kernel
  std::vector<KernelGroup> unmapped;  // kernels no mapping covers, with their nodes
  bool third_party_plugin = false;    // spec.devicePlugin.container: its own DaemonSet
  // spec.moduleLoader.container.version: nodes move to it one by one, when an administrator
  // labels them (ModuleVersionLabel); empty when the Module does not use ordered upgrades.
  std::string version;
  std::vector<UnsupportedField> unsupported;
  // Accepted but worth a Warning event, e.g. an image without a tag.
  std::vector<std::string> warnings;
};

// `nodes` are the nodes the Module may concern (others are filtered out here). The Module must
// be valid (api::ValidateModule).
ModulePlan PlanFor(const api::Module& module, const std::vector<NodeInfo>& nodes);

// Whether the image names a tag or digest ("host:5000/name" passes upstream's check but has
// neither; the runtime then pulls ":latest").
bool ImageHasExplicitTag(std::string_view image);

// Every spec field the operator parses but does not act on yet (DRA), with what to do
// instead.
std::vector<UnsupportedField> UnsupportedFieldsOf(const api::Module& module);

// `kmm-operator plan`: the objects to create or change, in a v1 List (Node kernel labels, then
// DaemonSets), and warnings for a human.
struct Plan {
  nlohmann::json list;
  std::vector<std::string> warnings;
  nlohmann::json expected_status;  // the Module's status once every planned pod is ready
};

// `nodes` are Node objects as the API returns them; nodes whose kernel label is missing or
// stale appear as Node objects carrying only the label to set.
Plan PlanModule(const api::Module& module, const std::vector<nlohmann::json>& nodes,
                const OperatorSettings& settings);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_PLAN_H_
