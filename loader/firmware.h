// Firmware for modules that call request_firmware: copied from the module image to a host
// directory the kernel searches, and removed again on unload. Stateless: what to remove is
// recomputed from the image, so a restarted loader cleans up what an earlier one copied.
#ifndef KMM_LOADER_FIRMWARE_H_
#define KMM_LOADER_FIRMWARE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kmm::loader {

// Copies every regular file under `source_dir` into `host_dir`, keeping relative paths and
// replacing files atomically (write, then rename). Returns the relative paths copied.
absl::StatusOr<std::vector<std::string>> InstallFirmware(const std::string& source_dir,
                                                         const std::string& host_dir);

// Removes from `host_dir` the files that `source_dir` holds, and directories left empty.
// A missing source is not an error (nothing is known to remove).
absl::Status RemoveFirmware(const std::string& source_dir, const std::string& host_dir);

// Points the kernel's firmware loader at `host_dir` through
// <sys_root>/module/firmware_class/parameters/path, unless it already is.
absl::Status SetFirmwareSearchPath(const std::string& sys_root, const std::string& host_dir);

}  // namespace kmm::loader

#endif  // KMM_LOADER_FIRMWARE_H_
