#include "deviceplugin/device_source.h"

#include <fnmatch.h>
#include <libudev.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <set>

#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace kmm::deviceplugin {
namespace {

struct UdevUnref {
  void operator()(udev* u) const { udev_unref(u); }
};
struct MonitorUnref {
  void operator()(udev_monitor* m) const { udev_monitor_unref(m); }
};
struct EnumerateUnref {
  void operator()(udev_enumerate* e) const { udev_enumerate_unref(e); }
};
struct DeviceUnref {
  void operator()(udev_device* d) const { udev_device_unref(d); }
};
using UdevPtr = std::unique_ptr<udev, UdevUnref>;
using MonitorPtr = std::unique_ptr<udev_monitor, MonitorUnref>;
using EnumeratePtr = std::unique_ptr<udev_enumerate, EnumerateUnref>;
using DevicePtr = std::unique_ptr<udev_device, DeviceUnref>;

std::string Value(const char* text) { return text == nullptr ? "" : text; }

bool Glob(const std::string& pattern, const std::string& text) {
  return pattern.empty() || fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

// The driver bound to the device or, for class devices like misc, to its nearest parent.
std::string DriverOf(udev_device* device) {
  for (udev_device* d = device; d != nullptr; d = udev_device_get_parent(d)) {
    const std::string driver = Value(udev_device_get_driver(d));
    if (!driver.empty()) return driver;
  }
  return "";
}

// The NUMA node of the device or its nearest ancestor that reports one.
int NumaNodeOf(udev_device* device) {
  for (udev_device* d = device; d != nullptr; d = udev_device_get_parent(d)) {
    const char* value = udev_device_get_sysattr_value(d, "numa_node");
    if (value != nullptr) return std::atoi(value);
  }
  return -1;
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class UdevDeviceSource final : public DeviceSource {
 public:
  UdevDeviceSource(UdevPtr udev, MonitorPtr monitor)
      : udev_(std::move(udev)), monitor_(std::move(monitor)) {}

  absl::StatusOr<std::vector<Device>> List(const ResourceConfig& resource) override {
    const DeviceMatch& match = resource.match;
    EnumeratePtr enumerate(udev_enumerate_new(udev_.get()));
    if (!enumerate) return absl::InternalError("libudev: cannot enumerate devices");
    if (!match.subsystem.empty()) {
      udev_enumerate_add_match_subsystem(enumerate.get(), match.subsystem.c_str());
    }
    if (!match.kernel.empty()) {
      udev_enumerate_add_match_sysname(enumerate.get(), match.kernel.c_str());
    }
    for (const auto& [key, value] : match.properties) {
      udev_enumerate_add_match_property(enumerate.get(), key.c_str(), value.c_str());
    }
    for (const auto& [key, value] : match.attributes) {
      udev_enumerate_add_match_sysattr(enumerate.get(), key.c_str(), value.c_str());
    }
    if (int err = udev_enumerate_scan_devices(enumerate.get()); err < 0) {
      return ErrnoError(-err, "libudev: scan devices");
    }
    std::vector<Device> devices;
    udev_list_entry* entry;
    udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(enumerate.get())) {
      const std::string syspath = udev_list_entry_get_name(entry);
      if (removed_.contains(syspath)) continue;
      if (std::optional<Device> device = Lookup(resource, syspath)) {
        devices.push_back(std::move(*device));
      }
    }
    std::sort(devices.begin(), devices.end(),
              [](const Device& a, const Device& b) { return a.id < b.id; });
    return devices;
  }

  std::optional<Device> Lookup(const ResourceConfig& resource,
                               const std::string& syspath) override {
    const DeviceMatch& match = resource.match;
    DevicePtr device(udev_device_new_from_syspath(udev_.get(), syspath.c_str()));
    if (!device) return std::nullopt;  // gone
    if (!match.subsystem.empty() &&
        Value(udev_device_get_subsystem(device.get())) != match.subsystem) {
      return std::nullopt;
    }
    if (!Glob(match.kernel, Value(udev_device_get_sysname(device.get())))) return std::nullopt;
    for (const auto& [key, value] : match.properties) {
      if (Value(udev_device_get_property_value(device.get(), key.c_str())) != value) {
        return std::nullopt;
      }
    }
    for (const auto& [key, value] : match.attributes) {
      if (Trim(Value(udev_device_get_sysattr_value(device.get(), key.c_str()))) != value) {
        return std::nullopt;
      }
    }
    Device found;
    found.syspath = syspath;
    found.devnode = Value(udev_device_get_devnode(device.get()));
    if (!Glob(match.devnode, found.devnode)) return std::nullopt;
    if (!match.driver.empty() && DriverOf(device.get()) != match.driver) return std::nullopt;
    found.id = DeviceIdFrom(Value(udev_device_get_sysname(device.get())));
    if (!resource.health.attribute.empty()) {
      const char* value =
          udev_device_get_sysattr_value(device.get(), resource.health.attribute.c_str());
      found.healthy = value != nullptr && Trim(value) == resource.health.healthy_value;
    }
    found.numa_node = NumaNodeOf(device.get());
    return found;
  }

  int EventFd() const override { return udev_monitor_get_fd(monitor_.get()); }

  std::vector<DeviceEvent> DrainEvents() override {
    std::vector<DeviceEvent> events;
    while (DevicePtr device{udev_monitor_receive_device(monitor_.get())}) {
      const std::string action = Value(udev_device_get_action(device.get()));
      const std::string syspath = Value(udev_device_get_syspath(device.get()));
      spdlog::debug("uevent {} {}", action, syspath);
      // A removed device is gone even if its sysfs directory still shows for a moment.
      if (action == "remove") {
        removed_.insert(syspath);
      } else if (action == "add") {
        removed_.erase(syspath);
      }
      events.push_back({action, syspath});
    }
    return events;
  }

 private:
  UdevPtr udev_;
  MonitorPtr monitor_;
  std::set<std::string> removed_;  // syspaths whose last uevent was "remove"
};

}  // namespace

std::string DeviceIdFrom(std::string_view name) {
  std::string id(name);
  for (char& c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (id.size() > 63) {
    const size_t hash = std::hash<std::string_view>{}(name);
    id = fmt::format("{}-{:016x}", id.substr(0, 46), hash);
  }
  return id;
}

absl::StatusOr<std::unique_ptr<DeviceSource>> MakeUdevDeviceSource(std::string_view uevent_source) {
  UdevPtr udev(udev_new());
  if (!udev) return absl::InternalError("libudev: udev_new failed");
  std::string source(uevent_source);
  if (source == "auto") source = access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
  MonitorPtr monitor(udev_monitor_new_from_netlink(udev.get(), source.c_str()));
  if (!monitor) {
    return absl::UnavailableError(fmt::format(
        "libudev: cannot listen to {} uevents; the device plugin needs the host's network "
        "namespace (hostNetwork: true) to receive them",
        source));
  }
  if (int err = udev_monitor_enable_receiving(monitor.get()); err < 0) {
    return ErrnoError(-err, fmt::format("libudev: listen to {} uevents", source));
  }
  spdlog::info("watching {} uevents for device changes", source);
  return std::unique_ptr<DeviceSource>(new UdevDeviceSource(std::move(udev), std::move(monitor)));
}

}  // namespace kmm::deviceplugin
