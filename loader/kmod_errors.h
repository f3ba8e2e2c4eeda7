// Maps the kernel's answer to init_module/delete_module (an errno) to an error a cluster
// administrator can act on, once, at the loader's boundary (docs/design.md §7.3). EPERM is
// explained by looking at what blocks loading on this node.
#ifndef KMM_LOADER_KMOD_ERRORS_H_
#define KMM_LOADER_KMOD_ERRORS_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "loader/kmod.h"

namespace kmm::loader {

// Node-wide settings that make the kernel refuse modules; read only after an EPERM.
struct LoadRestrictions {
  bool modules_disabled = false;  // /proc/sys/kernel/modules_disabled = 1
  std::string lockdown;           // /sys/kernel/security/lockdown: "none", "integrity", ...
  bool sig_enforce = false;       // /sys/module/module/parameters/sig_enforce = Y
  bool loadpin_enforce = false;   // /proc/sys/kernel/loadpin/enforce = 1 (COS)
  // Whether this process has CAP_SYS_MODULE (/proc/self/status CapEff); unset when unknown.
  std::optional<bool> cap_sys_module;
};

// Reads the lockdown file ("none [integrity] confidentiality") of a securityfs this process
// mounts for the read alone: securityfs is rarely mounted in a pod (docs/loader.md).
using LockdownReader = std::function<absl::StatusOr<std::string>()>;
absl::StatusOr<std::string> ReadLockdownFromPrivateSecurityfs();

// Reads the restrictions under the given proc and sys roots; unreadable ones stay unset. The
// lockdown mode comes from <sys_root>/kernel/security/lockdown, else from
// `private_securityfs`, else from a lockdown= on the kernel command line.
LoadRestrictions ReadLoadRestrictions(const std::string& proc_root, const std::string& sys_root,
                                      const LockdownReader& private_securityfs);

// The error for a failed insert of `module` into kernel `kernel_version`. `insert_error`
// carries the errno (ErrnoOf); the result keeps it.
absl::Status InsertFailure(const absl::Status& insert_error, const ModuleFile& module,
                           std::string_view options, std::string_view kernel_version,
                           const LoadRestrictions& restrictions);

// Refuses a module built for another kernel, before init_module is tried.
absl::Status CheckVermagic(const ModuleFile& module, std::string_view kernel_version);

}  // namespace kmm::loader

#endif  // KMM_LOADER_KMOD_ERRORS_H_
