// Firmware for modules that call request_firmware: copied from the module image to a host
// directory the kernel searches, and removed again on unload. Stateless in the process: what
// to remove is recomputed from the image, and what must outlive a loader (the search path kmm
// replaced, which kmm modules have firmware there) is kept in the host directory, so a
// restarted loader or the unload pod cleans up what an earlier one did.
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
// <sys_root>/module/firmware_class/parameters/path, unless it already is. When it changes
// the value, the previous one is saved in <host_dir>/.kmm-firmware-class-path.
absl::Status SetFirmwareSearchPath(const std::string& sys_root, const std::string& host_dir);

// Records that kmm module `user` has firmware in `host_dir` (a file under
// <host_dir>/.kmm-firmware-users/), and forgets it again.
absl::Status AddFirmwareUser(const std::string& host_dir, const std::string& user);
absl::Status RemoveFirmwareUser(const std::string& host_dir, const std::string& user);

// Puts back the value SetFirmwareSearchPath replaced, only if kmm replaced one, the kernel
// still has kmm's value (nobody changed it since), and no kmm module has firmware in
// `host_dir` any more. The saved value is dropped once it is settled either way.
absl::Status RestoreFirmwareSearchPath(const std::string& sys_root, const std::string& host_dir);

}  // namespace kmm::loader

#endif  // KMM_LOADER_FIRMWARE_H_
