#include "operator/plan_command.h"

#include <fstream>
#include <sstream>

#include "common/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "operator/api/module.h"
#include "operator/api/validation.h"
#include "operator/desired/plan.h"
#include "operator/kube/yaml.h"

namespace kmm {
namespace {

absl::StatusOr<nlohmann::json> ReadYamlOrJson(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) return ErrnoError(errno, fmt::format("cannot read the {} file {}", what, path));
  std::stringstream text;
  text << in.rdbuf();
  return kube::ParseYaml(text.str(), path);
}

}  // namespace

absl::Status RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err) {
  if (options.output != "yaml" && options.output != "json") {
    return absl::InvalidArgumentError(
        fmt::format("-o {}: unknown output format; use yaml or json", options.output));
  }
  ASSIGN_OR_RETURN(nlohmann::json module_json, ReadYamlOrJson(options.module_file, "Module"));
  ASSIGN_OR_RETURN(api::Module module, api::ParseModule(module_json));
  if (module.metadata.namespace_name.empty()) module.metadata.namespace_name = "default";
  if (std::vector<std::string> problems = api::ValidateModule(module); !problems.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("Module {}/{} is invalid:\n  {}", module.metadata.namespace_name,
                    module.metadata.name, fmt::join(problems, "\n  ")));
  }
  ASSIGN_OR_RETURN(nlohmann::json node_list, ReadYamlOrJson(options.nodes_file, "NodeList"));
  std::vector<nlohmann::json> nodes;
  if (node_list.is_object() && node_list.contains("items") && node_list["items"].is_array()) {
    nodes.assign(node_list["items"].begin(), node_list["items"].end());
  } else if (node_list.is_object() && node_list.value("kind", "") == "Node") {
    nodes.push_back(node_list);
  } else {
    return absl::InvalidArgumentError(fmt::format(
        "{}: expected a NodeList (kubectl get nodes -o json) or a Node", options.nodes_file));
  }
  desired::Plan plan = desired::PlanModule(module, nodes, options.settings);
  for (const std::string& warning : plan.warnings) err << "warning: " << warning << "\n";
  // The status the operator will write once every planned pod is ready, from the same
  // function: conditions one per line, then the counts.
  for (const nlohmann::json& condition : plan.expected_status["conditions"]) {
    err << fmt::format("expected status: {}={} {}", condition["type"].get<std::string>(),
                       condition["status"].get<std::string>(),
                       condition["reason"].get<std::string>());
    const std::string message = condition["message"];
    if (!message.empty()) err << ": " << message;
    err << "\n";
  }
  err << "expected status: moduleLoader " << plan.expected_status["moduleLoader"].dump()
      << ", devicePlugin " << plan.expected_status["devicePlugin"].dump() << "\n";
  if (options.output == "json") {
    out << plan.list.dump(2) << "\n";
  } else {
    out << kube::ToYaml(plan.list);
  }
  return absl::OkStatus();
}

}  // namespace kmm
