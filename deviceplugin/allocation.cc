#include "deviceplugin/allocation.h"

#include <algorithm>
#include <set>

#include "fmt/format.h"
#include "fmt/ranges.h"

namespace kmm::deviceplugin {
namespace {

std::string ContainerPathFor(const ResourceConfig& resource, const Device& device) {
  std::string path = resource.container_path;
  auto replace = [&path](const std::string& key, const std::string& value) {
    for (size_t at = path.find(key); at != std::string::npos; at = path.find(key, at)) {
      path.replace(at, key.size(), value);
      at += value.size();
    }
  };
  replace("{devnode}", device.devnode);
  replace("{name}", device.id);
  return path;
}

std::string CdiName(const ResourceConfig& resource, const std::string& id) {
  return fmt::format("{}={}", resource.resource_name, id);
}

}  // namespace

Advertised Advertise(const ResourceConfig& resource, std::vector<Device> devices) {
  Advertised advertised;
  advertised.devices = std::move(devices);
  for (const Device& device : advertised.devices) {
    if (resource.replicas <= 1) {
      advertised.by_id.emplace(device.id, &device);
      continue;
    }
    for (int64_t replica = 0; replica < resource.replicas; ++replica) {
      advertised.by_id.emplace(fmt::format("{}-{}", device.id, replica), &device);
    }
  }
  return advertised;
}

v1beta1::ListAndWatchResponse ToListAndWatch(const Advertised& advertised) {
  v1beta1::ListAndWatchResponse response;
  for (const auto& [id, device] : advertised.by_id) {
    v1beta1::Device* out = response.add_devices();
    out->set_id(id);
    out->set_health(device->healthy ? "Healthy" : "Unhealthy");
    if (device->numa_node >= 0) out->mutable_topology()->add_nodes()->set_id(device->numa_node);
  }
  return response;
}

std::vector<std::string> PreferredAllocation(const Advertised& advertised,
                                             const std::vector<std::string>& available,
                                             const std::vector<std::string>& must_include,
                                             int size) {
  std::vector<std::string> chosen;
  std::set<std::string> taken;
  for (const std::string& id : must_include) {
    if (static_cast<int>(chosen.size()) < size && taken.insert(id).second) chosen.push_back(id);
  }
  auto numa_of = [&](const std::string& id) {
    auto it = advertised.by_id.find(id);
    return it == advertised.by_id.end() ? -1 : it->second->numa_node;
  };
  // Count the candidates per NUMA node, and the node the required devices sit on.
  std::map<int, int> free_per_node, required_per_node;
  for (const std::string& id : available) {
    if (!taken.contains(id)) ++free_per_node[numa_of(id)];
  }
  for (const std::string& id : chosen) ++required_per_node[numa_of(id)];
  int preferred = -1;
  int best = -1;
  const auto& score_source = required_per_node.empty() ? free_per_node : required_per_node;
  for (const auto& [node, count] : score_source) {
    if (count > best) {
      best = count;
      preferred = node;
    }
  }
  std::vector<std::string> candidates;
  for (const std::string& id : available) {
    if (!taken.contains(id)) candidates.push_back(id);
  }
  // The preferred node first; keep the kubelet's order otherwise, for stable answers.
  std::stable_partition(candidates.begin(), candidates.end(),
                        [&](const std::string& id) { return numa_of(id) == preferred; });
  for (const std::string& id : candidates) {
    if (static_cast<int>(chosen.size()) >= size) break;
    if (taken.insert(id).second) chosen.push_back(id);
  }
  return chosen;
}

absl::StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(
    const ResourceConfig& resource, const Advertised& advertised,
    const std::vector<std::string>& ids) {
  v1beta1::ContainerAllocateResponse response;
  std::set<std::string> nodes_added;
  for (const std::string& id : ids) {
    auto it = advertised.by_id.find(id);
    if (it == advertised.by_id.end()) {
      return absl::InvalidArgumentError(
          fmt::format("device {} is not a device of {} on this node", id, resource.resource_name));
    }
    const Device& device = *it->second;
    if (!device.healthy) {
      return absl::FailedPreconditionError(
          fmt::format("device {} of {} is unhealthy", id, resource.resource_name));
    }
    if (resource.cdi.enabled) response.add_cdi_devices()->set_name(CdiName(resource, device.id));
    // Replicas of one device share its node: list it once.
    if (device.devnode.empty() || !nodes_added.insert(device.devnode).second) continue;
    v1beta1::DeviceSpec* spec = response.add_devices();
    spec->set_host_path(device.devnode);
    spec->set_container_path(ContainerPathFor(resource, device));
    spec->set_permissions(resource.permissions);
  }
  for (const Mount& mount : resource.mounts) {
    v1beta1::Mount* out = response.add_mounts();
    out->set_container_path(mount.container_path);
    out->set_host_path(mount.host_path);
    out->set_read_only(mount.read_only);
  }
  for (const auto& [key, value] : resource.envs) (*response.mutable_envs())[key] = value;
  return response;
}

std::string CdiSpecFileName(const ResourceConfig& resource) {
  std::string name = resource.resource_name;
  std::replace(name.begin(), name.end(), '/', '_');
  return fmt::format("kmm-{}.json", name);
}

nlohmann::json CdiSpec(const ResourceConfig& resource, const Advertised& advertised) {
  nlohmann::json devices = nlohmann::json::array();
  for (const Device& device : advertised.devices) {
    nlohmann::json edits = nlohmann::json::object();
    if (!device.devnode.empty()) {
      edits["deviceNodes"] = {{{"path", ContainerPathFor(resource, device)},
                               {"hostPath", device.devnode},
                               {"permissions", resource.permissions}}};
    }
    devices.push_back({{"name", device.id}, {"containerEdits", edits}});
  }
  nlohmann::json common = nlohmann::json::object();
  for (const auto& [key, value] : resource.envs) common["env"].push_back(key + "=" + value);
  for (const Mount& mount : resource.mounts) {
    common["mounts"].push_back(
        {{"hostPath", mount.host_path},
         {"containerPath", mount.container_path},
         {"options", mount.read_only ? nlohmann::json{"ro", "bind"} : nlohmann::json{"bind"}}});
  }
  nlohmann::json spec = {
      {"cdiVersion", "0.6.0"}, {"kind", resource.resource_name}, {"devices", devices}};
  if (!common.empty()) spec["containerEdits"] = common;
  return spec;
}

}  // namespace kmm::deviceplugin
