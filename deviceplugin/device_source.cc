#include "deviceplugin/device_source.h"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <set>

#include "common/status.h"
#include "deviceplugin/udev_library.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace kmm::deviceplugin {
namespace {

// Handles own their libudev object and release it with libudev's unref function.
using UdevPtr = std::unique_ptr<udev, decltype(&::udev_unref)>;
using MonitorPtr = std::unique_ptr<udev_monitor, decltype(&::udev_monitor_unref)>;
using EnumeratePtr = std::unique_ptr<udev_enumerate, decltype(&::udev_enumerate_unref)>;
using DevicePtr = std::unique_ptr<udev_device, decltype(&::udev_device_unref)>;

std::string Value(const char* text) { return text == nullptr ? "" : text; }

bool Glob(const std::string& pattern, const std::string& text) {
  return pattern.empty() || fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

// The driver bound to the device or, for class devices like misc, to its nearest parent.
std::string DriverOf(const UdevLibrary& libudev, udev_device* device) {
  for (udev_device* d = device; d != nullptr; d = libudev.udev_device_get_parent(d)) {
    const std::string driver = Value(libudev.udev_device_get_driver(d));
    if (!driver.empty()) return driver;
  }
  return "";
}

// The NUMA node of the device or its nearest ancestor that reports one.
int NumaNodeOf(const UdevLibrary& libudev, udev_device* device) {
  for (udev_device* d = device; d != nullptr; d = libudev.udev_device_get_parent(d)) {
    const char* value = libudev.udev_device_get_sysattr_value(d, "numa_node");
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
  UdevDeviceSource(const UdevLibrary& libudev, UdevPtr udev, MonitorPtr monitor)
      : libudev_(libudev), udev_(std::move(udev)), monitor_(std::move(monitor)) {}

  absl::StatusOr<std::vector<Device>> List(const ResourceConfig& resource) override {
    const DeviceMatch& match = resource.match;
    EnumeratePtr enumerate(libudev_.udev_enumerate_new(udev_.get()), libudev_.udev_enumerate_unref);
    if (!enumerate) return absl::InternalError("libudev: cannot enumerate devices");
    if (!match.subsystem.empty()) {
      libudev_.udev_enumerate_add_match_subsystem(enumerate.get(), match.subsystem.c_str());
    }
    if (!match.kernel.empty()) {
      libudev_.udev_enumerate_add_match_sysname(enumerate.get(), match.kernel.c_str());
    }
    for (const auto& [key, value] : match.properties) {
      libudev_.udev_enumerate_add_match_property(enumerate.get(), key.c_str(), value.c_str());
    }
    for (const auto& [key, value] : match.attributes) {
      libudev_.udev_enumerate_add_match_sysattr(enumerate.get(), key.c_str(), value.c_str());
    }
    if (int err = libudev_.udev_enumerate_scan_devices(enumerate.get()); err < 0) {
      return ErrnoError(-err, "libudev: scan devices");
    }
    std::vector<Device> devices;
    for (udev_list_entry* entry = libudev_.udev_enumerate_get_list_entry(enumerate.get());
         entry != nullptr; entry = libudev_.udev_list_entry_get_next(entry)) {
      const std::string syspath = libudev_.udev_list_entry_get_name(entry);
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
    DevicePtr device(libudev_.udev_device_new_from_syspath(udev_.get(), syspath.c_str()),
                     libudev_.udev_device_unref);
    if (!device) return std::nullopt;  // gone
    if (!match.subsystem.empty() &&
        Value(libudev_.udev_device_get_subsystem(device.get())) != match.subsystem) {
      return std::nullopt;
    }
    if (!Glob(match.kernel, Value(libudev_.udev_device_get_sysname(device.get()))))
      return std::nullopt;
    for (const auto& [key, value] : match.properties) {
      if (Value(libudev_.udev_device_get_property_value(device.get(), key.c_str())) != value) {
        return std::nullopt;
      }
    }
    for (const auto& [key, value] : match.attributes) {
      if (Trim(Value(libudev_.udev_device_get_sysattr_value(device.get(), key.c_str()))) != value) {
        return std::nullopt;
      }
    }
    Device found;
    found.syspath = syspath;
    found.devnode = Value(libudev_.udev_device_get_devnode(device.get()));
    if (!Glob(match.devnode, found.devnode)) return std::nullopt;
    if (!match.driver.empty() && DriverOf(libudev_, device.get()) != match.driver)
      return std::nullopt;
    found.id = DeviceIdFrom(Value(libudev_.udev_device_get_sysname(device.get())));
    if (!resource.health.attribute.empty()) {
      const char* value =
          libudev_.udev_device_get_sysattr_value(device.get(), resource.health.attribute.c_str());
      found.healthy = value != nullptr && Trim(value) == resource.health.healthy_value;
    }
    found.numa_node = NumaNodeOf(libudev_, device.get());
    return found;
  }

  int EventFd() const override { return libudev_.udev_monitor_get_fd(monitor_.get()); }

  std::vector<DeviceEvent> DrainEvents() override {
    std::vector<DeviceEvent> events;
    while (DevicePtr device{libudev_.udev_monitor_receive_device(monitor_.get()),
                            libudev_.udev_device_unref}) {
      const std::string action = Value(libudev_.udev_device_get_action(device.get()));
      const std::string syspath = Value(libudev_.udev_device_get_syspath(device.get()));
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
  const UdevLibrary& libudev_;
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
  ASSIGN_OR_RETURN(const UdevLibrary* libudev, LoadUdevLibrary());
  UdevPtr udev(libudev->udev_new(), libudev->udev_unref);
  if (!udev) return absl::InternalError("libudev: udev_new failed");
  std::string source(uevent_source);
  if (source == "auto") source = access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
  MonitorPtr monitor(libudev->udev_monitor_new_from_netlink(udev.get(), source.c_str()),
                     libudev->udev_monitor_unref);
  if (!monitor) {
    return absl::UnavailableError(fmt::format(
        "libudev: cannot listen to {} uevents; the device plugin needs the host's network "
        "namespace (hostNetwork: true) to receive them",
        source));
  }
  if (int err = libudev->udev_monitor_enable_receiving(monitor.get()); err < 0) {
    return ErrnoError(-err, fmt::format("libudev: listen to {} uevents", source));
  }
  spdlog::info("watching {} uevents for device changes", source);
  return std::unique_ptr<DeviceSource>(
      new UdevDeviceSource(*libudev, std::move(udev), std::move(monitor)));
}

}  // namespace kmm::deviceplugin
