#include "loader/plan.h"

#include "common/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "loader/modprobe_command.h"

namespace kmm::loader {

absl::StatusOr<LoadPlan> PlanLoad(const LoaderConfig& config, std::string_view kernel_version) {
  LoadPlan plan;
  plan.kernel_version = std::string(kernel_version);
  if (config.raw_args.has_value()) {
    // rawArgs is a whole modprobe command line: flags, the module, then its options.
    // Without -d, modprobe reads the host's tree, and so do we.
    ASSIGN_OR_RETURN(ModprobeCommand command,
                     ParseModprobeCommand(config.raw_args->load, "config.rawArgs.load"));
    if (command.remove) {
      return absl::InvalidArgumentError(
          "config.rawArgs.load: contains -r/--remove; removal belongs in config.rawArgs.unload");
    }
    if (command.words.empty()) {
      return absl::InvalidArgumentError(
          "config.rawArgs.load: names no module; add the module name after the flags");
    }
    plan.root = command.dir_name.value_or("/");
    if (command.kernel_version) plan.kernel_version = *command.kernel_version;
    plan.first_time = command.first_time;
    if (command.all) {
      for (const std::string& name : command.words) plan.modules.push_back({name, ""});
    } else {
      std::vector<std::string> options(command.words.begin() + 1, command.words.end());
      plan.modules.push_back({command.words[0], fmt::format("{}", fmt::join(options, " "))});
    }
    return plan;
  }

  std::vector<std::string> options = config.parameters;
  plan.root = config.dir_name;
  if (config.args.has_value()) {
    ASSIGN_OR_RETURN(ModprobeCommand command,
                     ParseModprobeCommand(config.args->load, "config.args.load"));
    if (command.remove || command.all) {
      return absl::InvalidArgumentError(
          "config.args.load: -r/--remove and -a/--all change which modules are loaded; use "
          "moduleName and modulesLoadingOrder instead");
    }
    if (command.dir_name) plan.root = *command.dir_name;
    if (command.kernel_version) plan.kernel_version = *command.kernel_version;
    plan.first_time = command.first_time;
    // Words that are not flags are module parameters (name=value).
    options.insert(options.end(), command.words.begin(), command.words.end());
  }
  const std::string joined = fmt::format("{}", fmt::join(options, " "));
  if (config.modules_loading_order.empty()) {
    plan.modules.push_back({config.module_name, joined});
    return plan;
  }
  // Upstream meaning: moduleName first, then the modules it needs loaded before it, so the
  // list is loaded from its end. Parameters belong to moduleName.
  for (auto it = config.modules_loading_order.rbegin(); it != config.modules_loading_order.rend();
       ++it) {
    plan.modules.push_back({*it, *it == config.module_name ? joined : ""});
  }
  return plan;
}

absl::StatusOr<UnloadPlan> PlanUnload(const LoaderConfig& config, std::string_view kernel_version) {
  UnloadPlan plan;
  plan.kernel_version = std::string(kernel_version);
  if (config.raw_args.has_value()) {
    ASSIGN_OR_RETURN(ModprobeCommand command,
                     ParseModprobeCommand(config.raw_args->unload, "config.rawArgs.unload"));
    if (!command.remove) {
      return absl::InvalidArgumentError(
          "config.rawArgs.unload: is not a removal command; add -r (as in \"-r mymodule\")");
    }
    if (command.words.empty()) {
      return absl::InvalidArgumentError("config.rawArgs.unload: names no module to remove");
    }
    plan.root = command.dir_name.value_or("/");
    if (command.kernel_version) plan.kernel_version = *command.kernel_version;
    plan.first_time = command.first_time;
    plan.modules = command.words;  // modprobe -r takes every word as a module name
    return plan;
  }
  plan.root = config.dir_name;
  if (config.args.has_value()) {
    ASSIGN_OR_RETURN(ModprobeCommand command,
                     ParseModprobeCommand(config.args->unload, "config.args.unload"));
    if (!command.words.empty()) {
      return absl::InvalidArgumentError(fmt::format(
          "config.args.unload: \"{}\" is not a modprobe flag; only flags are allowed here",
          command.words.front()));
    }
    if (command.dir_name) plan.root = *command.dir_name;
    if (command.kernel_version) plan.kernel_version = *command.kernel_version;
    plan.first_time = command.first_time;
  }
  plan.modules = config.modules_loading_order.empty() ? std::vector<std::string>{config.module_name}
                                                      : config.modules_loading_order;
  return plan;
}

}  // namespace kmm::loader
