#include "loader/kmod_errors.h"

#include <cerrno>
#include <fstream>

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

// The errno is kept so callers can still branch on it.
absl::Status WithErrno(absl::StatusCode code, int errnum, const std::string& message) {
  return kmm::WithErrno(absl::Status(code, message), errnum);
}

}  // namespace

LoadRestrictions ReadLoadRestrictions(const std::string& proc_root, const std::string& sys_root) {
  LoadRestrictions restrictions;
  restrictions.modules_disabled = ReadFirstLine(proc_root + "/sys/kernel/modules_disabled") == "1";
  // "none [integrity] confidentiality": the bracketed word is the active mode.
  const std::string lockdown = ReadFirstLine(sys_root + "/kernel/security/lockdown");
  const size_t open = lockdown.find('[');
  const size_t close = lockdown.find(']');
  if (open != std::string::npos && close != std::string::npos && close > open) {
    restrictions.lockdown = lockdown.substr(open + 1, close - open - 1);
  }
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
      return WithErrno(
          absl::StatusCode::kPermissionDenied, EKEYREJECTED,
          fmt::format("the kernel enforces module signatures and rejected {} (EKEYREJECTED): "
                      "the module must be signed with a key the node trusts (set "
                      "spec.moduleLoader.container.sign, and enroll the key on the node)",
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
            "sign the module with a key the node trusts",
            restrictions.lockdown);
      } else if (restrictions.sig_enforce) {
        why =
            "the kernel enforces module signatures (module.sig_enforce); sign the module with "
            "a key the node trusts";
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
