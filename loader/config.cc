#include "loader/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include "common/json_fields.h"
#include "common/status.h"
#include "fmt/format.h"

namespace kmm::loader {
namespace {

absl::Status ParseModprobeArgs(JsonFields& parent, std::string_view key,
                               std::optional<ModprobeArgs>* out) {
  const nlohmann::json* object = nullptr;
  RETURN_IF_ERROR(parent.OptionalObject(key, &object));
  if (object == nullptr) return absl::OkStatus();
  JsonFields fields(*object, parent.PathOf(key));
  ModprobeArgs args;
  RETURN_IF_ERROR(fields.Optional("load", &args.load));
  RETURN_IF_ERROR(fields.Optional("unload", &args.unload));
  RETURN_IF_ERROR(fields.NoUnknownFields());
  *out = std::move(args);
  return absl::OkStatus();
}

// Empty lists are left out: the parser reads a missing list as empty.
nlohmann::json ModprobeArgsToJson(const ModprobeArgs& args) {
  nlohmann::json out = nlohmann::json::object();
  if (!args.load.empty()) out["load"] = args.load;
  if (!args.unload.empty()) out["unload"] = args.unload;
  return out;
}

absl::Status Invalid(std::string_view source, std::string_view message) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", source, message));
}

// Upstream KMM's webhook rules for the modprobe spec, with the same meaning.
absl::Status Validate(const LoaderConfig& config, std::string_view source) {
  const bool raw_load = config.raw_args.has_value() && !config.raw_args->load.empty();
  const bool raw_unload = config.raw_args.has_value() && !config.raw_args->unload.empty();
  if (!config.module_name.empty()) {
    if (raw_load || raw_unload) {
      return Invalid(source,
                     "config.rawArgs cannot be set together with config.moduleName; remove one "
                     "(rawArgs replaces every other modprobe setting)");
    }
  } else if (!raw_load || !raw_unload) {
    return Invalid(source,
                   "config.moduleName is missing; set it, or set both config.rawArgs.load and "
                   "config.rawArgs.unload");
  }
  if (config.dir_name.empty() || config.dir_name.front() != '/') {
    return Invalid(source, fmt::format("config.dirName: \"{}\" must be an absolute path such as "
                                       "\"/opt\"",
                                       config.dir_name));
  }
  if (!config.modules_loading_order.empty()) {
    if (config.modules_loading_order.size() < 2) {
      return Invalid(source,
                     "config.modulesLoadingOrder: needs at least two modules (moduleName first, "
                     "then the modules it needs loaded before it); remove it for one module");
    }
    if (config.module_name.empty()) {
      return Invalid(source, "config.modulesLoadingOrder: needs config.moduleName to be set");
    }
    if (config.modules_loading_order.front() != config.module_name) {
      return Invalid(source, fmt::format("config.modulesLoadingOrder[0]: is \"{}\" but must be "
                                         "config.moduleName \"{}\"",
                                         config.modules_loading_order.front(), config.module_name));
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < config.modules_loading_order.size(); ++i) {
      if (!seen.insert(config.modules_loading_order[i]).second) {
        return Invalid(source, fmt::format("config.modulesLoadingOrder[{}]: \"{}\" is listed "
                                           "twice; list each module once",
                                           i, config.modules_loading_order[i]));
      }
    }
  }
  for (size_t i = 0; i < config.parameters.size(); ++i) {
    const std::string& parameter = config.parameters[i];
    if (parameter.empty() || parameter.front() == '-' || parameter.front() == '=') {
      return Invalid(source, fmt::format("config.parameters[{}]: \"{}\" is not a module "
                                         "parameter; use name=value (modprobe flags go in "
                                         "config.args.load)",
                                         i, parameter));
    }
  }
  if (!config.firmware_path.empty() && config.firmware_host_path.empty()) {
    return Invalid(source, "config.firmwareHostPath: must not be empty when firmwarePath is set");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoaderConfig> ParseLoaderConfig(std::string_view json_text,
                                               std::string_view source) {
  ASSIGN_OR_RETURN(const nlohmann::json json, ParseJson(json_text, source));
  LoaderConfig config;
  JsonFields fields(json, "config");
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(fields.Optional("moduleName", &config.module_name));
    RETURN_IF_ERROR(fields.Optional("dirName", &config.dir_name));
    RETURN_IF_ERROR(fields.Optional("parameters", &config.parameters));
    RETURN_IF_ERROR(ParseModprobeArgs(fields, "args", &config.args));
    RETURN_IF_ERROR(ParseModprobeArgs(fields, "rawArgs", &config.raw_args));
    RETURN_IF_ERROR(fields.Optional("firmwarePath", &config.firmware_path));
    RETURN_IF_ERROR(fields.Optional("modulesLoadingOrder", &config.modules_loading_order));
    RETURN_IF_ERROR(fields.Optional("inTreeModulesToRemove", &config.in_tree_modules_to_remove));
    RETURN_IF_ERROR(fields.Optional("kernelVersion", &config.kernel_version));
    RETURN_IF_ERROR(fields.Optional("firmwareHostPath", &config.firmware_host_path));
    RETURN_IF_ERROR(fields.Optional("readinessFile", &config.readiness_file));
    RETURN_IF_ERROR(fields.Optional("terminationMessagePath", &config.termination_message_path));
    const nlohmann::json* device_plugin = nullptr;
    RETURN_IF_ERROR(fields.OptionalObject("devicePlugin", &device_plugin));
    if (device_plugin != nullptr) {
      ASSIGN_OR_RETURN(config.device_plugin, deviceplugin::ParseDevicePluginConfig(
                                                 *device_plugin, "config.devicePlugin"));
    }
    return fields.NoUnknownFields();
  }();
  if (!status.ok()) return Annotate(status, source);
  if (config.dir_name.empty()) config.dir_name = "/opt";  // upstream's default
  RETURN_IF_ERROR(Validate(config, source));
  return config;
}

nlohmann::json SerializeLoaderConfig(const LoaderConfig& config) {
  const LoaderConfig defaults;
  nlohmann::json out = nlohmann::json::object();
  auto set_if = [&out](std::string_view key, const auto& value, const auto& default_value) {
    if (value != default_value) out[std::string(key)] = value;
  };
  set_if("moduleName", config.module_name, defaults.module_name);
  set_if("dirName", config.dir_name, defaults.dir_name);
  set_if("parameters", config.parameters, defaults.parameters);
  if (config.args) out["args"] = ModprobeArgsToJson(*config.args);
  if (config.raw_args) out["rawArgs"] = ModprobeArgsToJson(*config.raw_args);
  set_if("firmwarePath", config.firmware_path, defaults.firmware_path);
  set_if("modulesLoadingOrder", config.modules_loading_order, defaults.modules_loading_order);
  set_if("inTreeModulesToRemove", config.in_tree_modules_to_remove,
         defaults.in_tree_modules_to_remove);
  set_if("kernelVersion", config.kernel_version, defaults.kernel_version);
  set_if("firmwareHostPath", config.firmware_host_path, defaults.firmware_host_path);
  set_if("readinessFile", config.readiness_file, defaults.readiness_file);
  set_if("terminationMessagePath", config.termination_message_path,
         defaults.termination_message_path);
  if (config.device_plugin) {
    out["devicePlugin"] = deviceplugin::DevicePluginConfigToJson(*config.device_plugin);
  }
  return out;
}

absl::StatusOr<LoaderConfig> LoadLoaderConfigFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return ErrnoError(errno, fmt::format("read loader config {}", path));
  std::stringstream text;
  text << file.rdbuf();
  return ParseLoaderConfig(text.str(), path);
}

}  // namespace kmm::loader
