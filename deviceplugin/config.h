// The device plugin's configuration: which udev devices make up which extended resource,
// and what a container that is allocated one gets. The same JSON object is read by
// `kmm-device-plugin --config` and carried under `devicePlugin` in kmm-loader's config.
#ifndef KMM_DEVICEPLUGIN_CONFIG_H_
#define KMM_DEVICEPLUGIN_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kmm::deviceplugin {

// A udev match: every field that is set must match.
struct DeviceMatch {
  std::string subsystem;                          // e.g. "misc"
  std::string driver;                             // the device's or its parent's driver
  std::string kernel;                             // sysname glob, e.g. "kmm-ci-a*"
  std::string devnode;                            // device node glob, e.g. "/dev/kmm-ci-a*"
  std::map<std::string, std::string> properties;  // udev properties, exact values
  std::map<std::string, std::string> attributes;  // sysfs attributes, exact values
  bool operator==(const DeviceMatch&) const = default;
};

struct Mount {
  std::string container_path;
  std::string host_path;
  bool read_only = true;
  bool operator==(const Mount&) const = default;
};

struct HealthCheck {
  std::string attribute;  // sysfs attribute of the device; empty: always healthy
  std::string healthy_value = "1";
  bool operator==(const HealthCheck&) const = default;
};

struct CdiOptions {
  bool enabled = false;
  std::string spec_dir = "/var/run/cdi";
  bool operator==(const CdiOptions&) const = default;
};

struct ResourceConfig {
  std::string resource_name;  // "example.com/kmm-ci-a"
  DeviceMatch match;
  // Where the device node appears in the container; {devnode} is the host node's path and
  // {name} the device's kernel name. Default "{devnode}" (the same path).
  std::string container_path = "{devnode}";
  std::string permissions = "rw";
  std::vector<Mount> mounts;
  std::map<std::string, std::string> envs;
  int64_t replicas = 1;  // sharing.replicas: each device advertised this many times
  HealthCheck health;
  CdiOptions cdi;
  bool operator==(const ResourceConfig&) const = default;
};

struct DevicePluginConfig {
  std::vector<ResourceConfig> resources;
  // Which uevents to listen to: "udev" (after udevd processed them; needs /run/udev),
  // "kernel" (straight from the kernel, for nodes or VMs without udevd), or "auto".
  std::string uevent_source = "auto";
  bool operator==(const DevicePluginConfig&) const = default;
};

// Parses `json` (the object itself); errors name `path` + the field, e.g.
// "devicePlugin.resources[0].resourceName".
absl::StatusOr<DevicePluginConfig> ParseDevicePluginConfig(const nlohmann::json& json,
                                                           std::string_view path);

// The JSON ParseDevicePluginConfig reads back as `config`: the operator writes the loader's
// devicePlugin field with it. Fields at their parser default are left out, except a health
// check's healthyValue, which is written whenever the check is.
nlohmann::json DevicePluginConfigToJson(const DevicePluginConfig& config);

// Checks an extended resource name: "<domain>/<name>", the domain not kubernetes.io.
absl::Status ValidateResourceName(std::string_view name);

}  // namespace kmm::deviceplugin

#endif  // KMM_DEVICEPLUGIN_CONFIG_H_
