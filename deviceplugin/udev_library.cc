#include "deviceplugin/udev_library.h"

#include <dlfcn.h>

#include "common/status.h"
#include "fmt/format.h"

namespace kmm::deviceplugin {
namespace {

constexpr const char* kSoname = "libudev.so.1";

template <typename Function>
absl::Status Resolve(void* handle, const char* name, Function& function) {
  function = reinterpret_cast<Function>(dlsym(handle, name));
  if (function == nullptr) {
    return absl::FailedPreconditionError(fmt::format("{} has no {}", kSoname, name));
  }
  return absl::OkStatus();
}

absl::StatusOr<UdevLibrary> Open() {
  // Never closed: the table is used until the process exits.
  void* handle = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();  // NOLINT(concurrency-mt-unsafe): glibc's is per thread
    return absl::FailedPreconditionError(fmt::format(
        "the device plugin needs libudev ({}), which cannot be loaded: {}", kSoname, error));
  }
  UdevLibrary library;
#define KMM_UDEV_RESOLVE(name) RETURN_IF_ERROR(Resolve(handle, #name, library.name));
  KMM_UDEV_FUNCTIONS(KMM_UDEV_RESOLVE)
#undef KMM_UDEV_RESOLVE
  return library;
}

}  // namespace

absl::StatusOr<const UdevLibrary*> LoadUdevLibrary() {
  static const absl::StatusOr<UdevLibrary>* const library = new absl::StatusOr<UdevLibrary>(Open());
  if (!library->ok()) return library->status();
  return &**library;
}

}  // namespace kmm::deviceplugin
