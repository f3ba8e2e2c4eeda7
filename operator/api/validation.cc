#include "operator/api/validation.h"

#include <optional>
#include <set>
#include <utility>

#include "deviceplugin/config.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "operator/api/kernel_mapping.h"
#include "re2/re2.h"

namespace kmm::api {
namespace {

using nlohmann::json;

constexpr std::string_view kLoaderPath = "spec.moduleLoader.container";

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Kubernetes' label-value / qualified-name-part shape: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9],
// at most 63 characters. nullopt when `value` has it.
std::optional<std::string> NamePartProblem(std::string_view value) {
  if (value.size() > 63) return fmt::format("{} characters, more than 63", value.size());
  if (!IsAlnum(value.front()) || !IsAlnum(value.back())) {
    return "must start and end with a letter or digit";
  }
  for (char c : value) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') {
      return "may hold only letters, digits, '-', '_' and '.'";
    }
  }
  return std::nullopt;
}

// A DNS-1123 subdomain: lowercase labels of [a-z0-9-] separated by '.', each starting and
// ending with [a-z0-9], at most 253 characters in all.
std::optional<std::string> Dns1123SubdomainProblem(std::string_view value) {
  constexpr std::string_view kShape =
      "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or "
      "digit (a DNS subdomain such as example.com)";
  if (value.empty()) return "must not be empty";
  if (value.size() > 253) return fmt::format("{} characters, more than 253", value.size());
  size_t start = 0;
  while (start <= value.size()) {
    size_t end = value.find('.', start);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view label = value.substr(start, end - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return std::string(kShape);
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
        return std::string(kShape);
      }
    }
    start = end + 1;
  }
  return std::nullopt;
}

// A label key or toleration key: [prefix/]name, prefix a DNS subdomain.
std::optional<std::string> QualifiedNameProblem(std::string_view value) {
  std::string_view name = value;
  if (const size_t slash = value.find('/'); slash != std::string_view::npos) {
    const std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (name.find('/') != std::string_view::npos) return "may hold at most one '/'";
    if (auto problem = Dns1123SubdomainProblem(prefix)) {
      return fmt::format("the prefix before '/' {}", *problem);
    }
  }
  if (name.empty()) return "the name part must not be empty";
  return NamePartProblem(name);
}

std::optional<std::string> LabelValueProblem(std::string_view value) {
  if (value.empty()) return std::nullopt;
  return NamePartProblem(value);
}

// Go's filepath.Clean, for the hostPath rule.
std::string CleanPath(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path.front() == '/';
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(part);
      }
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string joined = fmt::format("{}", fmt::join(parts, "/"));
  if (rooted) return "/" + joined;
  return joined.empty() ? "." : joined;
}

std::string StringField(const json& object, std::string_view key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

class Validator {
 public:
  std::vector<std::string> Run(const Module& module) {
    CheckNameLength(module.metadata);
    CheckSelector(module.spec.selector);
    CheckTolerations(module.spec.tolerations);
    if (module.spec.module_loader) CheckModuleLoader(module.spec.module_loader->container);
    if (module.spec.device_plugin) {
      CheckDevicePlugin(*module.spec.device_plugin, module.spec.module_loader.has_value());
    }
    if (module.spec.dra) CheckDra(*module.spec.dra, module.spec.device_plugin.has_value());
    return std::move(problems_);
  }

 private:
  template <typename... Args>
  void Problem(fmt::format_string<Args...> format, Args&&... args) {
    problems_.push_back(fmt::format(format, std::forward<Args>(args)...));
  }

  void CheckNameLength(const ObjectMeta& metadata) {
    const size_t length = metadata.name.size() + metadata.namespace_name.size();
    if (length > kMaxNameAndNamespaceLength) {
      Problem(
          "metadata.name: \"{}\" and namespace \"{}\" are {} characters together, more than the "
          "{} KMM allows (node label keys are made of both); use a shorter name or namespace",
          metadata.name, metadata.namespace_name, length, kMaxNameAndNamespaceLength);
    }
  }

  void CheckSelector(const StringMap& selector) {
    for (const auto& [key, value] : selector) {
      if (auto problem = QualifiedNameProblem(key)) {
        Problem("spec.selector: key \"{}\" is not a valid label key: {}", key, *problem);
      }
      if (auto problem = LabelValueProblem(value)) {
        Problem("spec.selector.{}: \"{}\" is not a valid label value: {}", key, value, *problem);
      }
    }
  }

  void CheckTolerations(const std::vector<json>& tolerations) {
    for (size_t i = 0; i < tolerations.size(); ++i) {
      const json& toleration = tolerations[i];
      const std::string path = fmt::format("spec.tolerations[{}]", i);
      const std::string key = StringField(toleration, "key");
      const std::string op = StringField(toleration, "operator");
      const std::string value = StringField(toleration, "value");
      const std::string effect = StringField(toleration, "effect");
      if (!key.empty()) {
        if (auto problem = QualifiedNameProblem(key)) {
          Problem("{}.key: \"{}\" is not a valid taint key: {}", path, key, *problem);
        }
      } else if (op != "Exists") {
        Problem(
            "{}.operator: must be Exists when key is empty (an empty key with Exists "
            "tolerates every taint); set a key or operator: Exists",
            path);
      }
      if (toleration.contains("tolerationSeconds") && !toleration["tolerationSeconds"].is_null() &&
          effect != "NoExecute") {
        Problem(
            "{}.tolerationSeconds: only applies to effect NoExecute; set effect: NoExecute "
            "or remove tolerationSeconds",
            path);
      }
      if (op.empty() || op == "Equal") {
        if (auto problem = LabelValueProblem(value)) {
          Problem("{}.value: \"{}\" is not a valid taint value: {}", path, value, *problem);
        }
      } else if (op == "Exists") {
        if (!value.empty()) {
          Problem(
              "{}.value: must be empty when operator is Exists; remove it or use operator: "
              "Equal",
              path);
        }
      } else {
        Problem("{}.operator: \"{}\" is not Equal or Exists", path, op);
      }
      if (!effect.empty() && effect != "NoSchedule" && effect != "PreferNoSchedule" &&
          effect != "NoExecute") {
        Problem(
            "{}.effect: \"{}\" is not NoSchedule, PreferNoSchedule or NoExecute (or empty, "
            "for every effect)",
            path, effect);
      }
    }
  }

  void CheckPullPolicy(std::string_view path, const std::string& policy) {
    if (!policy.empty() && policy != "Always" && policy != "IfNotPresent" && policy != "Never") {
      Problem("{}.imagePullPolicy: \"{}\" is not Always, IfNotPresent or Never", path, policy);
    }
  }

  void CheckImage(std::string_view path, const std::string& image) {
    if (!ImageHasTagOrDigest(image)) {
      Problem(
          "{}: \"{}\" has no tag or digest; name one explicitly, e.g. \"{}:v1\" or "
          "\"{}:${{KERNEL_FULL_VERSION}}\"",
          path, image, image, image);
    }
    if (HasUnclosedVariableReference(image)) {
      Problem("{}: \"{}\" has a \"${{\" without its closing \"}}\"", path, image);
    }
  }

  void CheckModuleLoader(const ModuleLoaderContainerSpec& container) {
    CheckPullPolicy(kLoaderPath, container.image_pull_policy);
    if (container.in_tree_modules_to_remove && !container.in_tree_module_to_remove.empty()) {
      Problem(
          "{}: inTreeModulesToRemove and the deprecated inTreeModuleToRemove cannot both be "
          "set; keep inTreeModulesToRemove",
          kLoaderPath);
    }
    if (!container.container_image.empty()) {
      CheckImage(fmt::format("{}.containerImage", kLoaderPath), container.container_image);
    }
    if (container.kernel_mappings.empty()) {
      Problem(
          "{}.kernelMappings: needs at least one mapping, e.g. {{\"regexp\": \"^.+$\"}} for "
          "every kernel",
          kLoaderPath);
    }
    for (size_t i = 0; i < container.kernel_mappings.size(); ++i) {
      CheckKernelMapping(container, i);
    }
    CheckModprobe(container.modprobe);
    CheckSign(fmt::format("{}.sign", kLoaderPath), container.sign, container.modprobe.dir_name);
    for (size_t i = 0; i < container.kernel_mappings.size(); ++i) {
      CheckSign(fmt::format("{}.kernelMappings[{}].sign", kLoaderPath, i),
                container.kernel_mappings[i].sign, container.modprobe.dir_name);
    }
  }

  void CheckKernelMapping(const ModuleLoaderContainerSpec& container, size_t index) {
    const KernelMapping& mapping = container.kernel_mappings[index];
    const std::string path = fmt::format("{}.kernelMappings[{}]", kLoaderPath, index);
    if (!mapping.literal.empty() && !mapping.regexp.empty()) {
      Problem("{}: literal and regexp are mutually exclusive; keep one", path);
    } else if (mapping.literal.empty() && mapping.regexp.empty()) {
      Problem(
          "{}: set literal (one exact kernel version) or regexp (a pattern such as "
          "\"^.+$\")",
          path);
    }
    if (!mapping.regexp.empty()) {
      RE2::Options options;
      options.set_log_errors(false);
      const RE2 regexp(mapping.regexp, options);
      if (!regexp.ok()) {
        Problem("{}.regexp: \"{}\" is not a valid RE2 regular expression: {}", path, mapping.regexp,
                regexp.error());
      }
    }
    if (mapping.container_image.empty()) {
      if (container.container_image.empty()) {
        Problem(
            "{}.containerImage: missing; set it here or set {}.containerImage for every "
            "mapping",
            path, kLoaderPath);
      }
    } else {
      CheckImage(path + ".containerImage", mapping.container_image);
    }
    if (mapping.in_tree_modules_to_remove && !mapping.in_tree_module_to_remove.empty()) {
      Problem(
          "{}: inTreeModulesToRemove and the deprecated inTreeModuleToRemove cannot both be "
          "set; keep inTreeModulesToRemove",
          path);
    }
    if ((mapping.in_tree_modules_to_remove && !container.in_tree_module_to_remove.empty()) ||
        (!mapping.in_tree_module_to_remove.empty() && container.in_tree_modules_to_remove)) {
      Problem(
          "{}: uses one of inTreeModulesToRemove / inTreeModuleToRemove while {} uses the "
          "other; use inTreeModulesToRemove in both",
          path, kLoaderPath);
    }
  }

  void CheckModprobe(const ModprobeSpec& modprobe) {
    const std::string path = fmt::format("{}.modprobe", kLoaderPath);
    const bool has_name = !modprobe.module_name.empty();
    const bool raw_load = modprobe.raw_args && !modprobe.raw_args->load.empty();
    const bool raw_unload = modprobe.raw_args && !modprobe.raw_args->unload.empty();
    if (has_name) {
      if (raw_load || raw_unload) {
        Problem(
            "{}.rawArgs: cannot be set together with moduleName; remove rawArgs, or remove "
            "moduleName and give the full modprobe arguments in rawArgs.load and "
            "rawArgs.unload",
            path);
      }
    } else if (!raw_load || !raw_unload) {
      Problem("{}.moduleName: missing; set it, or set both rawArgs.load and rawArgs.unload", path);
    }
    if (modprobe.dir_name.empty() || modprobe.dir_name.front() != '/') {
      Problem("{}.dirName: \"{}\" must be an absolute path such as \"/opt\"", path,
              modprobe.dir_name);
    }
    if (!modprobe.modules_loading_order) return;
    const std::vector<std::string>& order = *modprobe.modules_loading_order;
    if (order.size() < 2) {
      Problem(
          "{}.modulesLoadingOrder: needs at least two modules (moduleName first, then the "
          "modules to load before it); remove it for a single module",
          path);
    }
    if (!has_name) {
      Problem("{}.modulesLoadingOrder: needs moduleName to be set (as its first entry)", path);
    } else if (!order.empty() && order.front() != modprobe.module_name) {
      Problem("{}.modulesLoadingOrder[0]: is \"{}\" but must be moduleName \"{}\"", path,
              order.front(), modprobe.module_name);
    }
    std::set<std::string_view> seen;
    for (size_t i = 0; i < order.size(); ++i) {
      if (!seen.insert(order[i]).second) {
        Problem("{}.modulesLoadingOrder[{}]: \"{}\" is listed twice; list each module once", path,
                i, order[i]);
      }
    }
  }

  void CheckSign(const std::string& path, const std::optional<Sign>& sign,
                 std::string_view dir_name) {
    if (!sign) return;
    if (sign->files_to_sign.empty()) {
      Problem(
          "{}.filesToSign: required when sign is set; list the modules to sign, e.g. "
          "\"{}/lib/modules/${{KERNEL_FULL_VERSION}}/<module>.ko\"",
          path, dir_name);
    }
    // "/opt/" and "/opt" name the same directory.
    std::string_view dir = dir_name;
    while (!dir.empty() && dir.back() == '/') dir.remove_suffix(1);
    const std::string prefix = fmt::format("{}/", dir);
    for (size_t i = 0; i < sign->files_to_sign.size(); ++i) {
      const std::string& file = sign->files_to_sign[i];
      if (!file.starts_with(prefix)) {
        Problem(
            "{}.filesToSign[{}]: \"{}\" is not under modprobe.dirName \"{}\"; modules are "
            "in {}lib/modules/<kernel>/",
            path, i, file, dir_name, prefix);
      }
    }
  }

  void CheckHostPathVolumes(std::string_view path, const std::vector<json>& volumes) {
    for (size_t i = 0; i < volumes.size(); ++i) {
      auto host_path = volumes[i].find("hostPath");
      if (host_path == volumes[i].end() || !host_path->is_object()) continue;
      const std::string dir = StringField(*host_path, "path");
      const std::string clean = CleanPath(dir);
      bool allowed = false;
      for (std::string_view prefix : {"/dev", "/sys", "/var", "/opt", "/run"}) {
        allowed = allowed || clean == prefix ||
                  (clean.size() > prefix.size() && clean.starts_with(prefix) &&
                   clean[prefix.size()] == '/');
      }
      if (!allowed) {
        Problem(
            "{}.volumes[{}].hostPath.path: \"{}\" is not allowed; only paths under /dev, "
            "/sys, /var, /opt and /run may be mounted",
            path, i, dir);
      }
    }
  }

  void CheckContainer(std::string_view path, const ContainerSpec& container) {
    CheckPullPolicy(path, container.image_pull_policy);
  }

  void CheckDevicePlugin(const DevicePluginSpec& plugin, bool has_module_loader) {
    if (!plugin.builtin.is_null() && !has_module_loader) {
      Problem(
          "spec.devicePlugin.builtin: the built-in device plugin runs in the loader pod, so it "
          "needs spec.moduleLoader; add one, or run your own plugin with "
          "spec.devicePlugin.container");
    }
    if (plugin.container) CheckContainer("spec.devicePlugin.container", *plugin.container);
    if (plugin.init_container) {
      CheckContainer("spec.devicePlugin.initContainer", *plugin.init_container);
    }
    CheckHostPathVolumes("spec.devicePlugin", plugin.volumes);
    // The loader would refuse it on every node; say so once, on the Module.
    if (!plugin.builtin.is_null()) {
      absl::StatusOr<deviceplugin::DevicePluginConfig> builtin =
          deviceplugin::ParseDevicePluginConfig(plugin.builtin, "spec.devicePlugin.builtin");
      if (!builtin.ok()) Problem("{}", std::string(builtin.status().message()));
    }
  }

  void CheckDra(const DraSpec& dra, bool has_device_plugin) {
    if (has_device_plugin) {
      Problem("spec.dra: spec.dra and spec.devicePlugin are mutually exclusive; keep one");
    }
    CheckContainer("spec.dra.container", dra.container);
    if (dra.init_container) CheckContainer("spec.dra.initContainer", *dra.init_container);
    CheckHostPathVolumes("spec.dra", dra.volumes);
    if (auto problem = Dns1123SubdomainProblem(dra.driver_name)) {
      Problem("spec.dra.driverName: \"{}\" {}", dra.driver_name, *problem);
    }
    std::set<std::string_view> seen;
    for (size_t i = 0; i < dra.device_classes.size(); ++i) {
      const std::string& name = dra.device_classes[i].name;
      if (auto problem = Dns1123SubdomainProblem(name)) {
        Problem("spec.dra.deviceClasses[{}].name: \"{}\" {}", i, name, *problem);
      } else if (!seen.insert(name).second) {
        Problem("spec.dra.deviceClasses[{}].name: \"{}\" is listed twice; names must be unique", i,
                name);
      }
    }
  }

  std::vector<std::string> problems_;
};

}  // namespace

bool ImageHasTagOrDigest(std::string_view image) {
  // Upstream's webhook test, kept as it is so that every Module upstream accepts applies
  // unchanged (docs/design.md §5): it also lets "registry:5000/repo" (a port, no tag) through.
  return image.find(':') != std::string_view::npos || image.find('@') != std::string_view::npos;
}

std::vector<std::string> ValidateModule(const Module& module) { return Validator().Run(module); }

}  // namespace kmm::api
