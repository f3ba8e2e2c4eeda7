#include "deviceplugin/config.h"

#include "common/json_fields.h"
#include "common/status.h"
#include "fmt/format.h"
#include "re2/re2.h"

namespace kmm::deviceplugin {
namespace {

absl::Status Invalid(const std::string& field, std::string_view message) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", field, message));
}

absl::Status ParseMatch(const nlohmann::json& json, const std::string& path, DeviceMatch& match) {
  JsonFields fields(json, path);
  RETURN_IF_ERROR(fields.Optional("subsystem", &match.subsystem));
  RETURN_IF_ERROR(fields.Optional("driver", &match.driver));
  RETURN_IF_ERROR(fields.Optional("kernel", &match.kernel));
  RETURN_IF_ERROR(fields.Optional("devnode", &match.devnode));
  RETURN_IF_ERROR(fields.Optional("properties", &match.properties));
  RETURN_IF_ERROR(fields.Optional("attributes", &match.attributes));
  RETURN_IF_ERROR(fields.NoUnknownFields());
  if (match.subsystem.empty() && match.driver.empty() && match.kernel.empty() &&
      match.devnode.empty() && match.properties.empty() && match.attributes.empty()) {
    return Invalid(path,
                   "matches every device; set at least one of subsystem, driver, kernel, "
                   "devnode, properties, attributes");
  }
  return absl::OkStatus();
}

absl::Status ParseResource(const nlohmann::json& json, const std::string& path,
                           ResourceConfig& resource) {
  JsonFields fields(json, path);
  RETURN_IF_ERROR(fields.Required("resourceName", &resource.resource_name));
  if (absl::Status status = ValidateResourceName(resource.resource_name); !status.ok()) {
    return Invalid(fields.PathOf("resourceName"), FromAbsl(status.message()));
  }
  const nlohmann::json* match = nullptr;
  RETURN_IF_ERROR(fields.OptionalObject("match", &match));
  if (match == nullptr) return Invalid(fields.PathOf("match"), "required field is missing");
  RETURN_IF_ERROR(ParseMatch(*match, fields.PathOf("match"), resource.match));
  RETURN_IF_ERROR(fields.Optional("containerPath", &resource.container_path));
  RETURN_IF_ERROR(fields.Optional("permissions", &resource.permissions));
  if (resource.permissions != "r" && resource.permissions != "rw" &&
      resource.permissions != "rwm" && resource.permissions != "rm" &&
      resource.permissions != "w" && resource.permissions != "wm") {
    return Invalid(fields.PathOf("permissions"),
                   fmt::format("\"{}\" is not a device permission; use \"rw\" (default) or "
                               "\"rwm\" (also allows mknod)",
                               resource.permissions));
  }
  const nlohmann::json* mounts = nullptr;
  RETURN_IF_ERROR(fields.OptionalArray("mounts", &mounts));
  for (size_t i = 0; mounts != nullptr && i < mounts->size(); ++i) {
    JsonFields mount_fields((*mounts)[i], fmt::format("{}[{}]", fields.PathOf("mounts"), i));
    Mount mount;
    RETURN_IF_ERROR(mount_fields.Required("containerPath", &mount.container_path));
    RETURN_IF_ERROR(mount_fields.Required("hostPath", &mount.host_path));
    RETURN_IF_ERROR(mount_fields.Optional("readOnly", &mount.read_only));
    RETURN_IF_ERROR(mount_fields.NoUnknownFields());
    resource.mounts.push_back(std::move(mount));
  }
  RETURN_IF_ERROR(fields.Optional("envs", &resource.envs));
  const nlohmann::json* sharing = nullptr;
  RETURN_IF_ERROR(fields.OptionalObject("sharing", &sharing));
  if (sharing != nullptr) {
    JsonFields sharing_fields(*sharing, fields.PathOf("sharing"));
    RETURN_IF_ERROR(sharing_fields.Optional("replicas", &resource.replicas));
    RETURN_IF_ERROR(sharing_fields.NoUnknownFields());
    if (resource.replicas < 1 || resource.replicas > 1000) {
      return Invalid(
          sharing_fields.PathOf("replicas"),
          fmt::format("{} is out of range; use 1 (no sharing) to 1000", resource.replicas));
    }
  }
  const nlohmann::json* health = nullptr;
  RETURN_IF_ERROR(fields.OptionalObject("health", &health));
  if (health != nullptr) {
    JsonFields health_fields(*health, fields.PathOf("health"));
    RETURN_IF_ERROR(health_fields.Required("attribute", &resource.health.attribute));
    RETURN_IF_ERROR(health_fields.Optional("healthyValue", &resource.health.healthy_value));
    RETURN_IF_ERROR(health_fields.NoUnknownFields());
    if (resource.health.attribute.find('/') != std::string::npos ||
        resource.health.attribute.find("..") != std::string::npos) {
      return Invalid(health_fields.PathOf("attribute"),
                     "must be the name of one sysfs attribute of the device, like \"health\"");
    }
  }
  const nlohmann::json* cdi = nullptr;
  RETURN_IF_ERROR(fields.OptionalObject("cdi", &cdi));
  if (cdi != nullptr) {
    JsonFields cdi_fields(*cdi, fields.PathOf("cdi"));
    RETURN_IF_ERROR(cdi_fields.Optional("enabled", &resource.cdi.enabled));
    RETURN_IF_ERROR(cdi_fields.Optional("specDir", &resource.cdi.spec_dir));
    RETURN_IF_ERROR(cdi_fields.NoUnknownFields());
    if (resource.cdi.spec_dir.empty() || resource.cdi.spec_dir.front() != '/') {
      return Invalid(cdi_fields.PathOf("specDir"), "must be an absolute directory");
    }
  }
  return fields.NoUnknownFields();
}

nlohmann::json MatchToJson(const DeviceMatch& match) {
  nlohmann::json out = nlohmann::json::object();
  if (!match.subsystem.empty()) out["subsystem"] = match.subsystem;
  if (!match.driver.empty()) out["driver"] = match.driver;
  if (!match.kernel.empty()) out["kernel"] = match.kernel;
  if (!match.devnode.empty()) out["devnode"] = match.devnode;
  if (!match.properties.empty()) out["properties"] = match.properties;
  if (!match.attributes.empty()) out["attributes"] = match.attributes;
  return out;
}

nlohmann::json ResourceToJson(const ResourceConfig& resource) {
  const ResourceConfig defaults;
  nlohmann::json out = {{"resourceName", resource.resource_name},
                        {"match", MatchToJson(resource.match)}};
  if (resource.container_path != defaults.container_path) {
    out["containerPath"] = resource.container_path;
  }
  if (resource.permissions != defaults.permissions) out["permissions"] = resource.permissions;
  for (const Mount& mount : resource.mounts) {
    out["mounts"].push_back({{"containerPath", mount.container_path},
                             {"hostPath", mount.host_path},
                             {"readOnly", mount.read_only}});
  }
  if (!resource.envs.empty()) out["envs"] = resource.envs;
  if (resource.replicas != defaults.replicas) out["sharing"] = {{"replicas", resource.replicas}};
  // The parser requires the attribute once health is given; an empty one means no check.
  if (!resource.health.attribute.empty()) {
    out["health"] = {{"attribute", resource.health.attribute},
                     {"healthyValue", resource.health.healthy_value}};
  }
  if (resource.cdi != defaults.cdi) {
    out["cdi"] = {{"enabled", resource.cdi.enabled}, {"specDir", resource.cdi.spec_dir}};
  }
  return out;
}

}  // namespace

absl::Status ValidateResourceName(std::string_view name) {
  // Kubernetes: a qualified name with a DNS-subdomain prefix; extended resources may not
  // use the kubernetes.io domain.
  static const RE2* const kPattern = new RE2(
      "([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/"
      "([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)");
  std::string domain, ignored1, ignored2, ignored3, local;
  if (name.find('/') == std::string_view::npos) {
    return absl::InvalidArgumentError(
        fmt::format("\"{}\" has no domain; use a name like \"example.com/{}\"", name, name));
  }
  if (!RE2::FullMatch(std::string(name), *kPattern, &domain, &ignored1, &ignored2, &ignored3,
                      &local)) {
    return absl::InvalidArgumentError(
        fmt::format("\"{}\" is not a valid extended resource name; use <domain>/<name> with a "
                    "lower-case DNS domain and a name of letters, digits, '-', '_' and '.'",
                    name));
  }
  if (domain.size() > 253 || local.size() > 63) {
    return absl::InvalidArgumentError(
        fmt::format("\"{}\" is too long (domain at most 253 characters, name at most 63)", name));
  }
  if (domain == "kubernetes.io" || domain.ends_with(".kubernetes.io")) {
    return absl::InvalidArgumentError(fmt::format(
        "\"{}\" is in the kubernetes.io domain, which Kubernetes reserves; use your own domain",
        name));
  }
  return absl::OkStatus();
}

absl::StatusOr<DevicePluginConfig> ParseDevicePluginConfig(const nlohmann::json& json,
                                                           std::string_view path) {
  DevicePluginConfig config;
  JsonFields fields(json, std::string(path));
  const nlohmann::json* resources = nullptr;
  RETURN_IF_ERROR(fields.OptionalArray("resources", &resources));
  if (resources == nullptr || resources->empty()) {
    return Invalid(fields.PathOf("resources"),
                   "lists no resource; add one with a resourceName and a match");
  }
  RETURN_IF_ERROR(fields.Optional("ueventSource", &config.uevent_source));
  if (config.uevent_source != "auto" && config.uevent_source != "udev" &&
      config.uevent_source != "kernel") {
    return Invalid(fields.PathOf("ueventSource"),
                   fmt::format("\"{}\" is not one of auto, udev, kernel", config.uevent_source));
  }
  RETURN_IF_ERROR(fields.NoUnknownFields());
  for (size_t i = 0; i < resources->size(); ++i) {
    ResourceConfig resource;
    RETURN_IF_ERROR(ParseResource((*resources)[i],
                                  fmt::format("{}[{}]", fields.PathOf("resources"), i), resource));
    for (const ResourceConfig& other : config.resources) {
      if (other.resource_name == resource.resource_name) {
        return Invalid(fmt::format("{}[{}].resourceName", fields.PathOf("resources"), i),
                       fmt::format("\"{}\" is listed twice", resource.resource_name));
      }
    }
    config.resources.push_back(std::move(resource));
  }
  return config;
}

nlohmann::json DevicePluginConfigToJson(const DevicePluginConfig& config) {
  nlohmann::json out = {{"resources", nlohmann::json::array()}};
  for (const ResourceConfig& resource : config.resources) {
    out["resources"].push_back(ResourceToJson(resource));
  }
  if (config.uevent_source != DevicePluginConfig().uevent_source) {
    out["ueventSource"] = config.uevent_source;
  }
  return out;
}

}  // namespace kmm::deviceplugin
