// `kmm-operator plan`: every object the operator would create or change for one Module on a
// set of nodes, without a cluster — the same builders the controllers use.
#ifndef KMM_OPERATOR_DESIRED_PLAN_H_
#define KMM_OPERATOR_DESIRED_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "operator/api/module.h"
#include "operator/desired/settings.h"

namespace kmm::desired {

struct Plan {
  nlohmann::json list;                // a v1 List: Node label changes, then DaemonSets
  std::vector<std::string> warnings;  // e.g. kernels without a mapping, with their nodes
};

// `nodes` are Node objects as the API returns them. The Module must be valid (see
// api::ValidateModule); nodes whose kernel label is missing or stale appear as Node objects
// carrying only the label to set.
Plan PlanModule(const api::Module& module, const std::vector<nlohmann::json>& nodes,
                const OperatorSettings& settings);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_PLAN_H_
