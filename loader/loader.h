// The loader's behaviour, independent of the command line: remove in-tree modules, install
// firmware, load the configured modules and their dependencies; unload in reverse with
// retries while a module is busy; report whether everything is live. kmm-loader's
// subcommands are thin wrappers around this class. Not thread-safe.
#ifndef KMM_LOADER_LOADER_H_
#define KMM_LOADER_LOADER_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "loader/config.h"
#include "loader/kmod.h"
#include "loader/kmod_errors.h"
#include "loader/module_identity.h"
#include "loader/plan.h"

namespace kmm::loader {

struct LoaderOptions {
  std::string host_root = "/";  // the host's module tree is <host_root>/lib/modules
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  absl::Duration unload_timeout = absl::Seconds(60);  // how long EBUSY is retried
  // Where the lockdown mode is read when <sys_root>/kernel/security is not mounted.
  LockdownReader read_private_securityfs = ReadLockdownFromPrivateSecurityfs;
};

// Makes the backend for a module image root and kernel (MakeLibkmodBackend in production).
using KmodBackendFactory = std::function<absl::StatusOr<std::unique_ptr<KmodBackend>>(
    const std::string& image_root, const std::string& host_root, const std::string& kernel)>;

class Loader {
 public:
  Loader(LoaderConfig config, std::string running_kernel, LoaderOptions options,
         KmodBackendFactory backend_factory, Clock& clock = RealClock());

  // The kernel the config targets: config.kernelVersion, or the running kernel.
  const std::string& target_kernel() const { return target_kernel_; }

  // False after a reboot into another kernel, before the operator moved this node to the
  // new kernel's DaemonSet: then nothing is loaded and unloading is a no-op.
  bool TargetsRunningKernel() const { return target_kernel_ == running_kernel_; }

  // Why this loader will not load anything on this kernel (empty when it will).
  std::string KernelMismatch() const;

  // Does the whole load; returns the modules now live, dependencies included, in load order.
  absl::StatusOr<std::vector<std::string>> Load();

  // Unloads the configured modules and the dependencies the module image carries (retrying
  // each while busy), then in-tree dependencies nothing else uses, then removes firmware.
  absl::Status Unload();

  // OK iff every configured module is live; otherwise names the first one that is not.
  absl::Status CheckLive();

 private:
  absl::StatusOr<KmodBackend*> Backend(const std::string& root, const std::string& kernel);
  absl::Status RemoveInTreeModules();
  // Each requested module's files (Resolve: dependencies first), in plan order; --first-time
  // refuses one already loaded.
  static absl::StatusOr<std::vector<std::vector<ModuleFile>>> ResolveRequests(KmodBackend& kmod,
                                                                              const LoadPlan& plan);
  // Removes live modules the image carries that are another build than the image's, or
  // refuses when one of them is in use. `resolved` is Resolve's answer per requested module.
  absl::Status ReplaceOtherBuilds(KmodBackend& kmod,
                                  const std::vector<std::vector<ModuleFile>>& resolved);
  static absl::Status OtherBuildInUse(const ModuleFile& file, const IdentityComparison& comparison,
                                      int users);
  // Removes `name`, then its dependencies no other module needs (those from the host's tree
  // only if unused); adds what it removed to `removed`.
  absl::Status RemoveWithUnusedDependencies(KmodBackend& kmod, const std::string& name,
                                            absl::Time deadline, std::set<std::string>& removed);
  absl::Status RemoveRetryingWhileBusy(KmodBackend& kmod, const std::string& name,
                                       absl::Time deadline);
  // Removes the dependencies of `name` that the module image carries and that are still
  // loaded with no module using them: left by an earlier unload that gave up (a retry).
  absl::Status RemoveLeftImageDependencies(KmodBackend& kmod, const std::string& name,
                                           absl::Time deadline, std::set<std::string>& removed);
  // Whether `name` resolves to the module image's tree (not the host's).
  static bool FromModuleImage(KmodBackend& kmod, const std::string& name);
  std::string FirmwareSource() const;
  std::string FirmwareUser() const;

  LoaderConfig config_;
  std::string running_kernel_;
  std::string target_kernel_;
  LoaderOptions options_;
  KmodBackendFactory backend_factory_;
  Clock& clock_;
  std::string backend_key_;
  std::unique_ptr<KmodBackend> backend_;
};

}  // namespace kmm::loader

#endif  // KMM_LOADER_LOADER_H_
