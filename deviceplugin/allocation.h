// The device plugin's answers, as pure functions of the config and the current devices:
// what ListAndWatch advertises, GetPreferredAllocation's choice, Allocate's response and
// the CDI spec. No I/O here, so the gRPC handlers stay fast and these stay testable.
#ifndef KMM_DEVICEPLUGIN_ALLOCATION_H_
#define KMM_DEVICEPLUGIN_ALLOCATION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "deviceplugin/config.h"
#include "deviceplugin/device_source.h"
#include "deviceplugin/v1beta1/api.pb.h"
#include "nlohmann/json.hpp"

namespace kmm::deviceplugin {

// What the kubelet sees: one entry per device and replica (IDs "<id>" or "<id>-<n>" with
// sharing), keyed by advertised ID.
struct Advertised {
  std::map<std::string, const Device*> by_id;  // points into `devices`
  std::vector<Device> devices;
};
Advertised Advertise(const ResourceConfig& resource, std::vector<Device> devices);

v1beta1::ListAndWatchResponse ToListAndWatch(const Advertised& advertised);

// Picks exactly `size` IDs from `available`: every `must_include`, then devices on the NUMA
// node most of them are on (or the node with the most available devices), then the rest.
std::vector<std::string> PreferredAllocation(const Advertised& advertised,
                                             const std::vector<std::string>& available,
                                             const std::vector<std::string>& must_include,
                                             int size);

// The response for one container; unknown or unhealthy IDs are an error naming them.
absl::StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(
    const ResourceConfig& resource, const Advertised& advertised,
    const std::vector<std::string>& ids);

// The CDI spec describing every device of the resource (kind = resource name).
nlohmann::json CdiSpec(const ResourceConfig& resource, const Advertised& advertised);

// The file name of the resource's CDI spec inside its spec directory.
std::string CdiSpecFileName(const ResourceConfig& resource);

}  // namespace kmm::deviceplugin

#endif  // KMM_DEVICEPLUGIN_ALLOCATION_H_
