#include "operator/desired/module_status.h"

#include <map>
#include <set>

#include "fmt/format.h"
#include "fmt/ranges.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

// How many node names one line of a message shows before "and N more".
constexpr size_t kNamesPerLine = 3;

// "a, b, c and 4997 more"
std::string NamesWithMore(const std::vector<std::string>& names) {
  if (names.size() <= kNamesPerLine) return fmt::format("{}", fmt::join(names, ", "));
  return fmt::format("{} and {} more",
                     fmt::join(names.begin(), names.begin() + kNamesPerLine, ", "),
                     names.size() - kNamesPerLine);
}

// One line per problem reason, each naming a few nodes and the first node's message: a
// thousand nodes failing the same way read as one line.
std::vector<std::string> DegradedLines(const ModulePlan& plan, const RolloutState& rollout) {
  std::vector<std::string> lines;
  for (const ImageProblem& image : rollout.images) {
    if (image.in_progress) continue;
    lines.push_back(fmt::format("{} for kernel {} ({}): {}", image.reason, image.kernel,
                                image.image, image.message));
  }
  for (const KernelGroup& group : plan.unmapped) {
    lines.push_back(fmt::format("no kernel mapping for kernel {} (nodes: {})", group.kernel,
                                NamesWithMore(group.nodes)));
  }
  std::map<std::string, std::vector<const NodeProblem*>> by_reason;
  std::vector<std::string> order;
  for (const NodeProblem& problem : rollout.problems) {
    if (problem.reason == "Unloading") continue;  // progress, not a problem
    auto [it, inserted] = by_reason.try_emplace(problem.reason);
    if (inserted) order.push_back(problem.reason);
    it->second.push_back(&problem);
  }
  for (const std::string& reason : order) {
    const std::vector<const NodeProblem*>& problems = by_reason[reason];
    if (problems.size() == 1) {
      lines.push_back(fmt::format("{} on {}: {}", reason, problems[0]->node, problems[0]->message));
      continue;
    }
    std::vector<std::string> nodes;
    for (const NodeProblem* problem : problems) nodes.push_back(problem->node);
    lines.push_back(fmt::format("{} on {} nodes ({}); on {}: {}", reason, problems.size(),
                                NamesWithMore(nodes), problems[0]->node, problems[0]->message));
  }
  return lines;
}

// Joins the lines, cutting (at a line, else inside the first) to stay under the limit.
std::string BoundedMessage(const std::vector<std::string>& lines) {
  std::string message;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string next = message.empty() ? lines[i] : fmt::format("{}; {}", message, lines[i]);
    if (next.size() > kMaxMessageBytes - 64) {
      size_t left_out = lines.size() - i;
      if (message.empty()) {  // one line alone is too long: cut inside it
        message = lines[i].substr(0, kMaxMessageBytes - 64) + "...";
        --left_out;
      }
      if (left_out == 0) return message;
      return fmt::format("{}; and {} more (see status.nodes and events)", message, left_out);
    }
    message = std::move(next);
  }
  return message;
}

}  // namespace

json Condition(std::string type, bool status, std::string reason, std::string message,
               int64_t generation) {
  return {{"type", std::move(type)},
          {"status", status ? "True" : "False"},
          {"reason", std::move(reason)},
          {"message", std::move(message)},
          {"observedGeneration", generation}};
}

json ModuleStatusFor(const ModulePlan& plan, const RolloutState& rollout, int64_t generation) {
  std::set<std::string> degraded_reasons;
  if (!plan.unmapped.empty()) degraded_reasons.insert("NoKernelMapping");
  for (const NodeProblem& problem : rollout.problems) {
    if (problem.reason != "Unloading") degraded_reasons.insert(problem.reason);
  }
  // Kernels whose image is being made are progress; those failing to be made, problems.
  std::vector<std::string> making;
  for (const ImageProblem& image : rollout.images) {
    if (image.in_progress) {
      making.push_back(
          fmt::format("{} for kernel {}: {}", image.reason, image.kernel, image.message));
    } else {
      degraded_reasons.insert(image.reason);
    }
  }
  // A Module with only a device plugin loads nothing: its readiness is its plugin's.
  const bool loads = plan.has_module_loader;
  const int desired = loads ? rollout.loaders_desired : rollout.plugins_desired;
  const int available = loads ? rollout.loaders_available : rollout.plugins_available;
  const bool progressing =
      rollout.in_transition || rollout.outdated > 0 || available < desired || !making.empty();
  const bool ready = !progressing && degraded_reasons.empty();
  const std::string degraded_reason =
      degraded_reasons.empty() ? "AsExpected" : fmt::format("{}", fmt::join(degraded_reasons, ","));
  const std::string what = loads ? "nodes loaded" : "nodes running the device plugin";

  json conditions = {
      Condition("Ready", ready, ready ? "Loaded" : (progressing ? "Progressing" : degraded_reason),
                fmt::format("{} of {} {}", available, desired, what), generation),
      Condition("Progressing", progressing,
                !making.empty() ? "ImageBuild" : (progressing ? "Rollout" : "AsExpected"),
                progressing ? BoundedMessage([&] {
                  std::vector<std::string> lines = {fmt::format(
                      "{} outdated, {} available of {}", rollout.outdated, available, desired)};
                  lines.insert(lines.end(), making.begin(), making.end());
                  return lines;
                }())
                            : "",
                generation),
      Condition("Degraded", !degraded_reasons.empty(), degraded_reason,
                BoundedMessage(DegradedLines(plan, rollout)), generation),
  };
  if (!plan.unsupported.empty()) {
    std::vector<std::string> lines;
    for (const UnsupportedField& field : plan.unsupported) {
      lines.push_back(fmt::format("{} is not supported yet: {}", field.field, field.advice));
    }
    conditions.push_back(Condition("Unsupported", true, "FieldNotSupportedYet",
                                   fmt::format("{}", fmt::join(lines, "; ")), generation));
  }

  return {
      {"moduleLoader",
       {{"nodesMatchingSelectorNumber", loads ? plan.matching_nodes : 0},
        {"desiredNumber", rollout.loaders_desired},
        {"availableNumber", rollout.loaders_available}}},
      {"devicePlugin",
       {{"nodesMatchingSelectorNumber", plan.third_party_plugin ? plan.matching_nodes : 0},
        {"desiredNumber", rollout.plugins_desired},
        {"availableNumber", rollout.plugins_available}}},
      {"conditions", conditions},
      {"nodes", ListedNodes(rollout.problems)},
      {"nodesWithProblemsNumber", static_cast<int>(rollout.problems.size())},
  };
}

json ListedNodes(const std::vector<NodeProblem>& problems) {
  json nodes = json::array();
  for (const NodeProblem& problem : problems) {
    if (nodes.size() == kMaxListedNodes) break;
    nodes.push_back(
        {{"node", problem.node}, {"reason", problem.reason}, {"message", problem.message}});
  }
  return nodes;
}

RolloutState ConvergedRollout(const ModulePlan& plan) {
  RolloutState rollout;
  for (const LoaderTarget& target : plan.loaders) {
    rollout.loaders_desired += static_cast<int>(target.nodes.size());
  }
  rollout.loaders_available = rollout.loaders_desired;
  if (plan.third_party_plugin) {
    rollout.plugins_desired =
        plan.has_module_loader ? rollout.loaders_desired : plan.matching_nodes;
    rollout.plugins_available = rollout.plugins_desired;
  }
  return rollout;
}

}  // namespace kmm::desired
