// Finds the devices that make up a resource, and tells when they may have changed.
// DeviceSource is the seam (docs/design.md §7.4); UdevDeviceSource is the real one, on libudev:
// enumeration for the current state, a uevent monitor for changes (add, remove, change,
// bind/unbind), so nothing polls. Not thread-safe: the device plugin's event thread owns it.
#ifndef KMM_DEVICEPLUGIN_DEVICE_SOURCE_H_
#define KMM_DEVICEPLUGIN_DEVICE_SOURCE_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "deviceplugin/config.h"

namespace kmm::deviceplugin {

struct Device {
  std::string id;       // stable kubelet device ID derived from the device (≤ 63 chars)
  std::string syspath;  // /sys/devices/...
  std::string devnode;  // /dev/... (empty when the device has no node)
  bool healthy = true;
  int numa_node = -1;  // -1: unknown
  bool operator==(const Device&) const = default;
};

// One uevent: "add", "remove", "change", "bind", "unbind", ...
struct DeviceEvent {
  std::string action;
  std::string syspath;
};

class DeviceSource {
 public:
  virtual ~DeviceSource() = default;
  // The devices matching `resource`, sorted by ID.
  virtual absl::StatusOr<std::vector<Device>> List(const ResourceConfig& resource) = 0;
  // The device at `syspath`, read afresh, if it exists and matches `resource`.
  virtual std::optional<Device> Lookup(const ResourceConfig& resource,
                                       const std::string& syspath) = 0;
  // A file descriptor that becomes readable when devices may have changed (-1: never).
  virtual int EventFd() const = 0;
  // Reads every pending event.
  virtual std::vector<DeviceEvent> DrainEvents() = 0;
};

// `uevent_source`: "udev", "kernel" or "auto" (udev when /run/udev/control exists).
absl::StatusOr<std::unique_ptr<DeviceSource>> MakeUdevDeviceSource(std::string_view uevent_source);

// A kubelet device ID from a device name: characters outside [A-Za-z0-9._-] become '_', and
// names over 63 characters keep a prefix and a hash of the whole.
std::string DeviceIdFrom(std::string_view name);

}  // namespace kmm::deviceplugin

#endif  // KMM_DEVICEPLUGIN_DEVICE_SOURCE_H_
