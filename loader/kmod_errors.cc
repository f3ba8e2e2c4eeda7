#include "loader/kmod_errors.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/status.h"
#include "fmt/format.h"

namespace kmm::loader {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

// "none [integrity] confidentiality" -> "integrity": the bracketed word is the active mode.
std::string ActiveLockdownMode(const std::string& modes) {
  const size_t open = modes.find('[');
  const size_t close = modes.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  return modes.substr(open + 1, close - open - 1);
}

// lockdown=MODE on the kernel command line: only an explicit one (Secure Boot's is not there).
std::string LockdownFromCommandLine(const std::string& cmdline) {
  std::istringstream words(cmdline);
  std::string word;
  std::string mode;
  while (words >> word) {
    if (word.rfind("lockdown=", 0) == 0) mode = word.substr(sizeof("lockdown=") - 1);
  }
  return mode;
}

// Bit 16 of CapEff in /proc/self/status; unset when the file cannot be read.
std::optional<bool> HasCapSysModule(const std::string& status_path) {
  std::ifstream status(status_path);
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const uint64_t caps = std::strtoull(line.c_str() + sizeof("CapEff:") - 1, nullptr, 16);
    return (caps >> 16 & 1) != 0;  // CAP_SYS_MODULE
  }
  return std::nullopt;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The errno is kept so callers can still branch on it.
absl::Status WithErrno(absl::StatusCode code, int errnum, const std::string& message) {
  return kmm::WithErrno(absl::Status(code, message), errnum);
}

}  // namespace

// A detached mount (fsopen/fsmount, Linux 5.2): it has no mount point, so no directory is
// needed, nothing is visible to other processes, and nothing is left to unmount when the
// loader dies; it goes with the last file descriptor. Needs CAP_SYS_ADMIN (a privileged pod).
absl::StatusOr<std::string> ReadLockdownFromPrivateSecurityfs() {
  const Fd context(fsopen("securityfs", FSOPEN_CLOEXEC));
  if (context.get() < 0) return ErrnoError(errno, "open a securityfs mount context");
  if (fsconfig(context.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    return ErrnoError(errno, "create a securityfs mount");
  }
  const Fd mount(
      fsmount(context.get(), FSMOUNT_CLOEXEC,
              MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (mount.get() < 0) return ErrnoError(errno, "mount securityfs privately");
  const Fd file(openat(mount.get(), "lockdown", O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) return ErrnoError(errno, "open securityfs's lockdown");
  char buffer[256];
  const ssize_t size = read(file.get(), buffer, sizeof(buffer) - 1);
  if (size < 0) return ErrnoError(errno, "read securityfs's lockdown");
  return std::string(buffer, size);
}

LoadRestrictions ReadLoadRestrictions(const std::string& proc_root, const std::string& sys_root,
                                      const LockdownReader& private_securityfs) {
  LoadRestrictions restrictions;
  restrictions.modules_disabled = ReadFirstLine(proc_root + "/sys/kernel/modules_disabled") == "1";
  // securityfs is mounted on the host but rarely in a pod, where the file is missing. Then a
  // private mount of it (privileged pods), then an explicit lockdown= at boot.
  std::string lockdown = ReadFirstLine(sys_root + "/kernel/security/lockdown");
  if (lockdown.empty()) {
    absl::StatusOr<std::string> read = private_securityfs();
    if (read.ok()) lockdown = *read;
  }
  restrictions.lockdown = ActiveLockdownMode(lockdown);
  if (restrictions.lockdown.empty()) {
    restrictions.lockdown = LockdownFromCommandLine(ReadFirstLine(proc_root + "/cmdline"));
  }
  restrictions.cap_sys_module = HasCapSysModule(proc_root + "/self/status");
  restrictions.sig_enforce =
      ReadFirstLine(sys_root + "/module/module/parameters/sig_enforce") == "Y";
  restrictions.loadpin_enforce = ReadFirstLine(proc_root + "/sys/kernel/loadpin/enforce") == "1";
  return restrictions;
}

absl::Status CheckVermagic(const ModuleFile& module, std::string_view kernel_version) {
  if (module.vermagic == kernel_version) return absl::OkStatus();
  if (module.vermagic.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "{} ({}) has no vermagic, so it was not built as a kernel module for {}; rebuild it "
        "against that kernel's headers",
        module.name, module.path, kernel_version));
  }
  return absl::FailedPreconditionError(fmt::format(
      "{} was built for kernel {} but this node runs kernel {}; not loading it. Build the "
      "module for {} (a kernelMappings entry whose image matches this kernel)",
      module.name, module.vermagic, kernel_version, kernel_version));
}

absl::Status InsertFailure(const absl::Status& insert_error, const ModuleFile& module,
                           std::string_view options, std::string_view kernel_version,
                           const LoadRestrictions& restrictions) {
  const std::optional<int> errnum = ErrnoOf(insert_error);
  if (!errnum.has_value()) return insert_error;
  const std::string& name = module.name;
  switch (*errnum) {
    case ENOEXEC:
      return WithErrno(
          absl::StatusCode::kFailedPrecondition, ENOEXEC,
          fmt::format("the kernel rejected {} ({}) as an invalid module format (ENOEXEC): it "
                      "was built for kernel {} or another architecture or compiler, the node "
                      "runs {}; rebuild it against this kernel's headers",
                      name, module.path, module.vermagic, kernel_version));
    case EKEYREJECTED:
      // With module.sig_enforce the kernel answers EKEYREJECTED for an unsigned module and
      // for one signed by a key it does not trust alike (its log says which).
      return WithErrno(
          absl::StatusCode::kPermissionDenied, EKEYREJECTED,
          fmt::format("the kernel enforces module signatures and rejected {} (EKEYREJECTED): "
                      "it is unsigned, or signed with a key the node does not trust (the "
                      "kernel log says which); sign it with the Module's sign section (its "
                      "keySecret and certSecret) or the kernel's scripts/sign-file, with a key "
                      "the node trusts (a Machine Owner Key enrolled with mokutil)",
                      name));
    case ENOKEY:
      return WithErrno(
          absl::StatusCode::kPermissionDenied, ENOKEY,
          fmt::format("the kernel enforces module signatures and does not know the key {} is "
                      "signed with (ENOKEY); enroll that key on the node or sign with a "
                      "trusted one",
                      name));
    case EBADMSG:
      return WithErrno(
          absl::StatusCode::kPermissionDenied, EBADMSG,
          fmt::format("the signature of {} is malformed (EBADMSG); sign it again", name));
    case ENOENT:
      return WithErrno(
          absl::StatusCode::kFailedPrecondition, ENOENT,
          fmt::format("the kernel could not resolve a symbol or a parameter of {} (ENOENT; the "
                      "kernel log names which): check the parameters [{}] and that the "
                      "modules it needs are built for kernel {}",
                      name, options, kernel_version));
    case EINVAL:
      return WithErrno(
          absl::StatusCode::kInvalidArgument, EINVAL,
          fmt::format("the kernel refused {} with invalid arguments (EINVAL): a parameter value "
                      "in [{}] is wrong, or the module does not match this kernel; see the "
                      "kernel log",
                      name, options));
    case EPERM: {
      std::string why;
      if (restrictions.modules_disabled) {
        why =
            "module loading is disabled on this node (/proc/sys/kernel/modules_disabled is "
            "1 until reboot); boot the node without disabling module loading";
      } else if (restrictions.loadpin_enforce) {
        why =
            "LoadPin only allows modules from the boot filesystem (Container-Optimized OS); "
            "use a node image without LoadPin (e.g. Ubuntu node pools) or boot with "
            "loadpin.enforce=0";
      } else if (!restrictions.lockdown.empty() && restrictions.lockdown != "none") {
        why = fmt::format(
            "kernel lockdown is in \"{}\" mode, which only allows signed modules; "
            "sign the module with a key the node trusts (the Module's sign section)",
            restrictions.lockdown);
      } else if (restrictions.sig_enforce) {
        why =
            "the kernel enforces module signatures (module.sig_enforce); sign the module with "
            "a key the node trusts";
      } else if (restrictions.cap_sys_module.value_or(false) && restrictions.lockdown.empty()) {
        // The loader may load modules, yet the kernel said no: in practice lockdown (Secure
        // Boot turns it on), whose mode a pod without CAP_SYS_ADMIN cannot read.
        why =
            "the loader has CAP_SYS_MODULE, so most likely kernel lockdown (on with Secure "
            "Boot) refuses unsigned modules, but its mode could not be read here "
            "(/sys/kernel/security is not mounted in the pod, and mounting it needs "
            "CAP_SYS_ADMIN); check `cat /sys/kernel/security/lockdown` on the node and sign "
            "the module with a key the node trusts, or look for a security module (SELinux, "
            "AppArmor) denying it";
      } else {
        why =
            "the loader lacks CAP_SYS_MODULE or a security module denies it; run the loader "
            "pod with CAP_SYS_MODULE";
      }
      return WithErrno(absl::StatusCode::kPermissionDenied, EPERM,
                       fmt::format("the kernel refused to load {} (EPERM): {}", name, why));
    }
    default:
      return Annotate(insert_error, fmt::format("load {} ({})", name, module.path));
  }
}

}  // namespace kmm::loader
