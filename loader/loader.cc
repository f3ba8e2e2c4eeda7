#include "loader/loader.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "common/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "loader/firmware.h"
#include "loader/kmod_errors.h"
#include "loader/plan.h"
#include "spdlog/spdlog.h"

namespace kmm::loader {
namespace {
constexpr absl::Duration kFirstBusyRetry = absl::Milliseconds(100);
constexpr absl::Duration kLongestBusyRetry = absl::Seconds(5);

void AddOnce(std::vector<std::string>& names, const std::string& name) {
  if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
}
}  // namespace

Loader::Loader(LoaderConfig config, std::string running_kernel, LoaderOptions options,
               KmodBackendFactory backend_factory, Clock& clock)
    : config_(std::move(config)),
      running_kernel_(std::move(running_kernel)),
      target_kernel_(config_.kernel_version.empty() ? running_kernel_ : config_.kernel_version),
      options_(std::move(options)),
      backend_factory_(std::move(backend_factory)),
      clock_(clock) {}

std::string Loader::KernelMismatch() const {
  if (TargetsRunningKernel()) return "";
  return fmt::format(
      "this loader is for kernel {} but the node runs kernel {} (it was probably rebooted "
      "into a new kernel); loading nothing until the operator schedules the loader for {}",
      target_kernel_, running_kernel_, running_kernel_);
}

absl::StatusOr<KmodBackend*> Loader::Backend(const std::string& root, const std::string& kernel) {
  const std::string key = root + "\n" + kernel;
  if (!backend_ || backend_key_ != key) {
    ASSIGN_OR_RETURN(backend_, backend_factory_(root, options_.host_root, kernel));
    backend_key_ = key;
  }
  return backend_.get();
}

std::string Loader::FirmwareSource() const {
  return (std::filesystem::path(config_.dir_name) /
          std::filesystem::path(config_.firmware_path).relative_path())
      .lexically_normal();
}

// Who has firmware in the host directory, for RestoreFirmwareSearchPath: the kernel module's
// name, which one node loads for one Module only.
std::string Loader::FirmwareUser() const {
  return config_.module_name.empty() ? "unnamed" : NormalizeModuleName(config_.module_name);
}

absl::StatusOr<std::vector<std::string>> Loader::Load() {
  if (!TargetsRunningKernel()) return absl::FailedPreconditionError(KernelMismatch());
  ASSIGN_OR_RETURN(const LoadPlan plan, PlanLoad(config_, target_kernel_));
  RETURN_IF_ERROR(RemoveInTreeModules());

  if (!config_.firmware_path.empty()) {
    ASSIGN_OR_RETURN(const std::vector<std::string> copied,
                     InstallFirmware(FirmwareSource(), config_.firmware_host_path));
    spdlog::info("installed firmware {} into {}", fmt::join(copied, ", "),
                 config_.firmware_host_path);
    RETURN_IF_ERROR(AddFirmwareUser(config_.firmware_host_path, FirmwareUser()));
    RETURN_IF_ERROR(SetFirmwareSearchPath(options_.sys_root, config_.firmware_host_path));
  }

  ASSIGN_OR_RETURN(KmodBackend * kmod, Backend(plan.root, plan.kernel_version));
  ASSIGN_OR_RETURN(const std::vector<std::vector<ModuleFile>> resolved,
                   ResolveRequests(*kmod, plan));
  RETURN_IF_ERROR(ReplaceOtherBuilds(*kmod, resolved));

  std::vector<std::string> live;
  std::optional<LoadRestrictions> restrictions;  // read on the first EPERM only
  for (size_t i = 0; i < plan.modules.size(); ++i) {
    const ModuleRequest& request = plan.modules[i];
    if (kmod->State(request.name) == ModuleState::kLive) {
      spdlog::info("{} is already loaded", NormalizeModuleName(request.name));
      AddOnce(live, NormalizeModuleName(request.name));
      continue;
    }
    const std::vector<ModuleFile>& files = resolved[i];
    for (const ModuleFile& file : files) {
      const bool requested = &file == &files.back();
      const std::string options = requested ? request.options : "";
      if (kmod->State(file.name) == ModuleState::kLive) {
        AddOnce(live, file.name);
        continue;
      }
      RETURN_IF_ERROR(CheckVermagic(file, target_kernel_));
      absl::Status inserted = kmod->Insert(file, options);
      if (!inserted.ok() && ErrnoOf(inserted) != EEXIST) {
        if (ErrnoOf(inserted) == EPERM && !restrictions) {
          restrictions = ReadLoadRestrictions(options_.proc_root, options_.sys_root,
                                              options_.read_private_securityfs);
        }
        return InsertFailure(inserted, file, options, target_kernel_,
                             restrictions.value_or(LoadRestrictions{}));
      }
      spdlog::info("loaded {} from {}{}{}", file.name, file.path,
                   file.from_host ? " (in-tree dependency, from the host)" : "",
                   options.empty() ? "" : " with " + options);
      AddOnce(live, file.name);
    }
  }
  return live;
}

absl::StatusOr<std::vector<std::vector<ModuleFile>>> Loader::ResolveRequests(KmodBackend& kmod,
                                                                             const LoadPlan& plan) {
  std::vector<std::vector<ModuleFile>> resolved;
  for (const ModuleRequest& request : plan.modules) {
    const bool loaded = kmod.State(request.name) == ModuleState::kLive;
    if (loaded && plan.first_time) {
      return absl::AlreadyExistsError(fmt::format(
          "{} is already loaded and --first-time was given in args.load", request.name));
    }
    absl::StatusOr<std::vector<ModuleFile>> files = kmod.Resolve(request.name);
    if (!files.ok() && loaded) {
      // Loaded, but in neither tree: nothing to compare it with or to load instead.
      spdlog::warn("{} is loaded but not found to compare its build: {}", request.name,
                   files.status().message());
      files = std::vector<ModuleFile>{};
    }
    RETURN_IF_ERROR(files.status());
    resolved.push_back(*std::move(files));
  }
  return resolved;
}

// A module of the same name can be loaded from another build than the image's: one an
// unload could not remove while it was busy, before the Module moved to a new image. Taking
// it for loaded would report Ready on the old code. So every live module the image carries
// is compared with the image's file (module_identity.h: build-id, else srcversion); one
// that differs is replaced (removed here, loaded again by Load) when nothing but other
// replaced modules uses it, and otherwise refused, naming the module, both builds and what
// to do. In-tree dependencies from the host are the host's business and are not compared.
absl::Status Loader::ReplaceOtherBuilds(KmodBackend& kmod,
                                        const std::vector<std::vector<ModuleFile>>& resolved) {
  struct OtherBuild {
    ModuleFile file;
    IdentityComparison comparison;
  };
  std::vector<OtherBuild> others;  // in load order: dependencies first
  for (const std::vector<ModuleFile>& files : resolved) {
    for (const ModuleFile& file : files) {
      if (file.from_host || kmod.State(file.name) != ModuleState::kLive) continue;
      if (std::any_of(others.begin(), others.end(),
                      [&](const OtherBuild& other) { return other.file.name == file.name; })) {
        continue;
      }
      IdentityComparison comparison = CompareIdentities(
          ReadLoadedIdentity(options_.sys_root, file.name), kmod.FileIdentity(file));
      if (comparison.verdict == IdentityComparison::Verdict::kUnknown) {
        spdlog::warn(
            "cannot tell whether the loaded {} is the build in {}: neither a build-id nor a "
            "srcversion is known for both; taking the loaded one as it",
            file.name, file.path);
      }
      if (comparison.verdict != IdentityComparison::Verdict::kDifferent) continue;
      others.push_back({file, std::move(comparison)});
    }
  }
  for (const OtherBuild& other : others) {
    // Users counts a module's holders too; those that are replaced as well go first.
    int replaced_holders = 0;
    for (const OtherBuild& holder : others) {
      const std::vector<std::string> uses = kmod.LoadedDependencies(holder.file.name);
      replaced_holders += std::count(uses.begin(), uses.end(), other.file.name);
    }
    const int users = kmod.Users(other.file.name) - replaced_holders;
    if (users > 0) return OtherBuildInUse(other.file, other.comparison, users);
  }
  for (auto other = others.rbegin(); other != others.rend(); ++other) {
    spdlog::info("{} is loaded from another build ({} {}, the module image's is {}); replacing it",
                 other->file.name, other->comparison.kind, other->comparison.loaded,
                 other->comparison.file);
    absl::Status removed = kmod.Remove(other->file.name);
    if (ErrnoOf(removed) == EBUSY) {
      return OtherBuildInUse(other->file, other->comparison, kmod.Users(other->file.name));
    }
    RETURN_IF_ERROR(Annotate(removed, "replace another build"));
  }
  return absl::OkStatus();
}

absl::Status Loader::OtherBuildInUse(const ModuleFile& file, const IdentityComparison& comparison,
                                     int users) {
  return WithErrno(
      absl::FailedPreconditionError(fmt::format(
          "{} is loaded from another build than the module image's ({} {} is loaded, {} has "
          "{}) and is in use ({} users), so it cannot be replaced and is not reported ready: "
          "stop what uses it (the pods on this node that hold its devices, or modules and "
          "processes using it); the restarted loader then replaces it",
          file.name, comparison.kind, comparison.loaded, file.path, comparison.file, users)),
      EBUSY);
}

absl::Status Loader::RemoveInTreeModules() {
  if (config_.in_tree_modules_to_remove.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(KmodBackend * kmod, Backend(options_.host_root, target_kernel_));
  const absl::Time deadline = clock_.Now() + options_.unload_timeout;
  for (const std::string& name : config_.in_tree_modules_to_remove) {
    const ModuleState state = kmod->State(name);
    if (state == ModuleState::kBuiltin) {
      spdlog::warn("in-tree module {} is built into the kernel and cannot be removed", name);
      continue;
    }
    if (state == ModuleState::kNotLoaded) {
      spdlog::info("in-tree module {} is not loaded; nothing to remove", name);
      continue;
    }
    std::set<std::string> removed;
    RETURN_IF_ERROR(
        Annotate(RemoveWithUnusedDependencies(*kmod, NormalizeModuleName(name), deadline, removed),
                 "remove in-tree module before loading"));
  }
  return absl::OkStatus();
}

absl::Status Loader::RemoveRetryingWhileBusy(KmodBackend& kmod, const std::string& name,
                                             absl::Time deadline) {
  absl::Duration wait = kFirstBusyRetry;
  int attempts = 0;
  while (true) {
    ++attempts;
    absl::Status removed = kmod.Remove(name);
    const std::optional<int> errnum = ErrnoOf(removed);
    if (removed.ok() || errnum == ENOENT) {
      spdlog::info("unloaded {}", name);
      return absl::OkStatus();
    }
    if (errnum != EBUSY && errnum != EAGAIN) return removed;
    if (clock_.Now() + wait > deadline) {
      return WithErrno(
          absl::FailedPreconditionError(fmt::format(
              "{} is still in use after {} attempts over {} (EBUSY, {} users): stop the pods "
              "and processes that hold its devices; the operator retries the unload until it "
              "succeeds",
              name, attempts, absl::FormatDuration(options_.unload_timeout), kmod.Users(name))),
          EBUSY);
    }
    if (attempts == 1) spdlog::info("{} is in use; retrying until it is free", name);
    clock_.SleepFor(wait);
    wait = std::min(wait * 2, kLongestBusyRetry);
  }
}

bool Loader::FromModuleImage(KmodBackend& kmod, const std::string& name) {
  absl::StatusOr<std::vector<ModuleFile>> files = kmod.Resolve(name);
  if (!files.ok()) return false;
  for (const ModuleFile& file : *files) {
    if (file.name == name) return !file.from_host;
  }
  return false;
}

absl::Status Loader::RemoveLeftImageDependencies(KmodBackend& kmod, const std::string& name,
                                                 absl::Time deadline,
                                                 std::set<std::string>& removed) {
  absl::StatusOr<std::vector<ModuleFile>> files = kmod.Resolve(name);
  if (!files.ok()) return absl::OkStatus();  // not in the image: nothing of it to look for
  // Resolve lists dependencies first: walk it backwards, dependents before what they use.
  for (auto file = files->rbegin(); file != files->rend(); ++file) {
    if (file->name == name || file->from_host || removed.contains(file->name)) continue;
    if (kmod.State(file->name) != ModuleState::kLive || kmod.Holders(file->name) > 0) continue;
    spdlog::info("{} (a dependency of {} from the module image) is still loaded; unloading it",
                 file->name, name);
    RETURN_IF_ERROR(RemoveWithUnusedDependencies(kmod, file->name, deadline, removed));
  }
  return absl::OkStatus();
}

absl::Status Loader::RemoveWithUnusedDependencies(KmodBackend& kmod, const std::string& name,
                                                  absl::Time deadline,
                                                  std::set<std::string>& removed) {
  const std::vector<std::string> dependencies = kmod.LoadedDependencies(name);
  RETURN_IF_ERROR(RemoveRetryingWhileBusy(kmod, name, deadline));
  removed.insert(name);
  for (const std::string& dependency : dependencies) {
    if (kmod.State(dependency) != ModuleState::kLive) continue;
    // Another loaded module still needs it (a shared dependency): it stays, as with modprobe -r.
    if (kmod.Holders(dependency) > 0) continue;
    // A dependency the module image carries was loaded for this Module, so the unload is not
    // done until it is gone too: it is retried while a process holds it (an open device), like
    // the module itself. An in-tree one from the host goes only if unused, as with modprobe -r.
    if (!FromModuleImage(kmod, dependency) && kmod.Users(dependency) > 0) continue;
    RETURN_IF_ERROR(RemoveWithUnusedDependencies(kmod, dependency, deadline, removed));
  }
  return absl::OkStatus();
}

absl::Status Loader::Unload() {
  if (!TargetsRunningKernel()) {
    spdlog::info("nothing to unload: {}", KernelMismatch());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(const UnloadPlan plan, PlanUnload(config_, target_kernel_));
  ASSIGN_OR_RETURN(KmodBackend * kmod, Backend(plan.root, plan.kernel_version));
  const absl::Time deadline = clock_.Now() + options_.unload_timeout;
  std::set<std::string> removed;  // including dependencies removed along the way
  for (const std::string& module : plan.modules) {
    const std::string name = NormalizeModuleName(module);
    if (removed.contains(name)) continue;
    const ModuleState state = kmod->State(name);
    if (state == ModuleState::kNotLoaded) {
      if (plan.first_time) {
        return absl::NotFoundError(
            fmt::format("{} is not loaded and --first-time was given in args.unload", name));
      }
      spdlog::info("{} is not loaded; nothing to unload", name);
    } else if (state == ModuleState::kBuiltin) {
      spdlog::warn("{} is built into the kernel and cannot be unloaded", name);
      continue;
    } else {
      RETURN_IF_ERROR(RemoveWithUnusedDependencies(*kmod, name, deadline, removed));
    }
    RETURN_IF_ERROR(RemoveLeftImageDependencies(*kmod, name, deadline, removed));
  }
  if (!config_.firmware_path.empty()) {
    RETURN_IF_ERROR(RemoveFirmware(FirmwareSource(), config_.firmware_host_path));
    spdlog::info("removed firmware of {} from {}", FirmwareSource(), config_.firmware_host_path);
    RETURN_IF_ERROR(RemoveFirmwareUser(config_.firmware_host_path, FirmwareUser()));
    // The modules are gone: a search path that cannot be put back is worth a warning, not a
    // failed unload (which would hold the Module's deletion).
    if (absl::Status restored =
            RestoreFirmwareSearchPath(options_.sys_root, config_.firmware_host_path);
        !restored.ok()) {
      spdlog::warn("cannot restore the kernel's firmware search path: {}", restored.message());
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::CheckLive() {
  if (!TargetsRunningKernel()) return absl::FailedPreconditionError(KernelMismatch());
  ASSIGN_OR_RETURN(const LoadPlan plan, PlanLoad(config_, target_kernel_));
  ASSIGN_OR_RETURN(KmodBackend * kmod, Backend(plan.root, plan.kernel_version));
  for (const ModuleRequest& module : plan.modules) {
    const ModuleState state = kmod->State(module.name);
    if (state != ModuleState::kLive && state != ModuleState::kBuiltin) {
      return absl::UnavailableError(
          fmt::format("{} is {}", NormalizeModuleName(module.name), ModuleStateName(state)));
    }
  }
  return absl::OkStatus();
}

}  // namespace kmm::loader
