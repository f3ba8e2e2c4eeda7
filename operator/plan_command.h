// `kmm-operator plan`: reads a Module (YAML or JSON) and a NodeList (`kubectl get nodes -o
// json`), validates the Module, and prints the objects the operator would create or change.
#ifndef KMM_OPERATOR_PLAN_COMMAND_H_
#define KMM_OPERATOR_PLAN_COMMAND_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "operator/desired/settings.h"

namespace kmm {

struct PlanOptions {
  std::string module_file;
  std::string nodes_file;
  std::string output = "yaml";  // or "json"
  desired::OperatorSettings settings;
};

// Writes the List to `out` and warnings (kernels without a mapping...) to `err`. An invalid
// Module is an InvalidArgument error listing every problem.
absl::Status RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err);

}  // namespace kmm

#endif  // KMM_OPERATOR_PLAN_COMMAND_H_
