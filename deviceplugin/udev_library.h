// libudev, opened with dlopen when the device plugin starts instead of at process start:
// kmm-loader links the device plugin, yet most of its processes (load, unload, status)
// never use it, and each shared object mapped at start-up makes every one of them slower.
// UdevDeviceSource is the only caller. Thread-safe: the table is filled once, then only read.
#ifndef KMM_DEVICEPLUGIN_UDEV_LIBRARY_H_
#define KMM_DEVICEPLUGIN_UDEV_LIBRARY_H_

#include <libudev.h>

#include "absl/status/statusor.h"

namespace kmm::deviceplugin {

// Every libudev function the device plugin calls.
#define KMM_UDEV_FUNCTIONS(X)           \
  X(udev_new)                           \
  X(udev_unref)                         \
  X(udev_enumerate_new)                 \
  X(udev_enumerate_unref)               \
  X(udev_enumerate_add_match_subsystem) \
  X(udev_enumerate_add_match_sysname)   \
  X(udev_enumerate_add_match_property)  \
  X(udev_enumerate_add_match_sysattr)   \
  X(udev_enumerate_scan_devices)        \
  X(udev_enumerate_get_list_entry)      \
  X(udev_list_entry_get_next)           \
  X(udev_list_entry_get_name)           \
  X(udev_device_new_from_syspath)       \
  X(udev_device_unref)                  \
  X(udev_device_get_parent)             \
  X(udev_device_get_driver)             \
  X(udev_device_get_subsystem)          \
  X(udev_device_get_sysname)            \
  X(udev_device_get_syspath)            \
  X(udev_device_get_devnode)            \
  X(udev_device_get_action)             \
  X(udev_device_get_property_value)     \
  X(udev_device_get_sysattr_value)      \
  X(udev_monitor_new_from_netlink)      \
  X(udev_monitor_unref)                 \
  X(udev_monitor_enable_receiving)      \
  X(udev_monitor_get_fd)                \
  X(udev_monitor_receive_device)

// The functions of libudev.so.1, each with its declared type and name.
struct UdevLibrary {
// NOLINTNEXTLINE(bugprone-macro-parentheses): `name` is an identifier, not an expression.
#define KMM_UDEV_FUNCTION_POINTER(name) decltype(&::name) name = nullptr;
  KMM_UDEV_FUNCTIONS(KMM_UDEV_FUNCTION_POINTER)
#undef KMM_UDEV_FUNCTION_POINTER
};

// Opens libudev.so.1 on the first call and resolves every function; later calls return the
// same table, or the same error if the library or one of its functions is missing.
absl::StatusOr<const UdevLibrary*> LoadUdevLibrary();

}  // namespace kmm::deviceplugin

#endif  // KMM_DEVICEPLUGIN_UDEV_LIBRARY_H_
