// The loader's seam to the kernel's module loader (docs/design.md §7.4): KmodBackend, with one
// real implementation on libkmod. Resolution reads two module trees: the module image's
// (<root>/lib/modules/<kernel>, indexed by `depmod -b <root>`) and, for in-tree
// dependencies the image does not carry, the host's (<host root>/lib/modules/<kernel>).
// Errors keep the errno (ErrnoOf) so callers map them once (kmod_errors.h).
// Not thread-safe: one loader uses one backend from one thread.
#ifndef KMM_LOADER_KMOD_H_
#define KMM_LOADER_KMOD_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "loader/module_identity.h"

namespace kmm::loader {

enum class ModuleState { kNotLoaded, kBuiltin, kComing, kLive, kGoing };
std::string_view ModuleStateName(ModuleState state);

// One module file, found by name in a module tree.
struct ModuleFile {
  std::string name;             // kernel's name for it: '-' normalised to '_'
  std::string path;             // absolute path of the .ko (possibly compressed)
  std::string vermagic;         // the kernel release it was built for (first word of vermagic)
  bool from_host = false;       // resolved from the host's tree, not the module image's
  std::string srcversion = "";  // modinfo srcversion; empty for most (module_identity.h)
  bool operator==(const ModuleFile&) const = default;
};

class KmodBackend {
 public:
  virtual ~KmodBackend() = default;

  // `name` and the modules it needs (its modinfo `depends`, transitively), dependencies
  // first. Modules built into the kernel are left out. NotFound names both trees searched.
  virtual absl::StatusOr<std::vector<ModuleFile>> Resolve(std::string_view name) = 0;

  // init_module with `options`; the Status carries the kernel's errno (EEXIST when loaded).
  virtual absl::Status Insert(const ModuleFile& module, std::string_view options) = 0;

  // delete_module without waiting; the Status carries the errno (EBUSY when in use).
  virtual absl::Status Remove(std::string_view name) = 0;

  virtual ModuleState State(std::string_view name) = 0;

  // Loaded modules that `name` uses (the kernel's holder links), for removing unused
  // dependencies after it, as `modprobe -r` does.
  virtual std::vector<std::string> LoadedDependencies(std::string_view name) = 0;

  // How many users (references and holders) a loaded module has; 0 when unused.
  virtual int Users(std::string_view name) = 0;

  // How many loaded modules use `name` (its holders); a shared dependency has more than one.
  virtual int Holders(std::string_view name) = 0;

  // Which build `file` is (its build-id and srcversion), to compare with a loaded module's.
  // Parts that cannot be read stay empty: the comparison then falls back or says unknown.
  virtual ModuleIdentity FileIdentity(const ModuleFile& file) = 0;
};

// The libkmod backend. `image_root` is the module image's root (dirName, e.g. "/opt"),
// `host_root` the host's ("/"); both are searched under lib/modules/<kernel_version>.
absl::StatusOr<std::unique_ptr<KmodBackend>> MakeLibkmodBackend(std::string image_root,
                                                                std::string host_root,
                                                                std::string kernel_version);

// "kmm-ci-a" -> "kmm_ci_a", as the kernel names modules.
std::string NormalizeModuleName(std::string_view name);

}  // namespace kmm::loader

#endif  // KMM_LOADER_KMOD_H_
