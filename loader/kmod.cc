#include "loader/kmod.h"

#include <libkmod.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>

#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace kmm::loader {
namespace {

// RAII owners for libkmod's ref-counted handles.
struct CtxUnref {
  void operator()(kmod_ctx* ctx) const { kmod_unref(ctx); }
};
struct ModuleUnref {
  void operator()(kmod_module* module) const { kmod_module_unref(module); }
};
struct ListUnref {
  void operator()(kmod_list* list) const { kmod_module_unref_list(list); }
};
struct InfoListFree {
  void operator()(kmod_list* list) const { kmod_module_info_free_list(list); }
};
using CtxPtr = std::unique_ptr<kmod_ctx, CtxUnref>;
using ModulePtr = std::unique_ptr<kmod_module, ModuleUnref>;
using ModuleListPtr = std::unique_ptr<kmod_list, ListUnref>;
using InfoListPtr = std::unique_ptr<kmod_list, InfoListFree>;

std::string ModulesDir(const std::string& root, const std::string& kernel) {
  return (std::filesystem::path(root) / "lib/modules" / kernel).lexically_normal();
}

// A context whose log goes to nowhere: libkmod's messages would duplicate ours. Indexes
// are opened lazily, on the first lookup that needs them: a short kmm-loader process
// (status, unload) often needs none.
absl::StatusOr<CtxPtr> NewContext(const std::string& dir) {
  CtxPtr ctx(kmod_new(dir.c_str(), nullptr));
  if (!ctx) return absl::InternalError(fmt::format("libkmod: cannot create context for {}", dir));
  kmod_set_log_fn(
      ctx.get(), [](void*, int, const char*, int, const char*, const char*, va_list) {}, nullptr);
  return ctx;
}

// Finds `name` by module name or alias; nullptr when the tree has no file for it and it is
// not built in.
ModulePtr LookupModule(kmod_ctx* ctx, const std::string& name) {
  kmod_list* raw = nullptr;
  if (kmod_module_new_from_lookup(ctx, name.c_str(), &raw) < 0 || raw == nullptr) return nullptr;
  ModuleListPtr list(raw);
  kmod_list* entry;
  kmod_list_foreach(entry, list.get()) {
    kmod_module* module = kmod_module_get_module(entry);
    const bool builtin = kmod_module_get_initstate(module) == KMOD_MODULE_BUILTIN;
    if (kmod_module_get_path(module) != nullptr || builtin) return ModulePtr(module);
    kmod_module_unref(module);
  }
  return nullptr;
}

// The modinfo keys the loader needs, read in one pass: every kmod_module_get_info call
// reads and parses the module file again.
struct Modinfo {
  std::string vermagic;
  std::string depends;
  std::string srcversion;
};

Modinfo ReadModinfo(kmod_module* module) {
  Modinfo modinfo;
  kmod_list* raw = nullptr;
  if (kmod_module_get_info(module, &raw) < 0) return modinfo;
  InfoListPtr info(raw);
  kmod_list* entry;
  kmod_list_foreach(entry, info.get()) {
    const std::string_view key = kmod_module_info_get_key(entry);
    const char* value = kmod_module_info_get_value(entry);
    if (value == nullptr) continue;
    if (key == "vermagic") modinfo.vermagic = value;
    if (key == "depends") modinfo.depends = value;
    if (key == "srcversion") modinfo.srcversion = value;
  }
  return modinfo;
}

class LibkmodBackend final : public KmodBackend {
 public:
  LibkmodBackend(CtxPtr image, std::string image_root, std::string image_dir, std::string host_dir)
      : image_(std::move(image)),
        image_root_(std::move(image_root)),
        image_dir_(std::move(image_dir)),
        host_dir_(std::move(host_dir)) {}

  absl::StatusOr<std::vector<ModuleFile>> Resolve(std::string_view name) override {
    std::vector<ModuleFile> ordered;
    std::set<std::string> visiting;
    RETURN_IF_ERROR(ResolveInto(NormalizeModuleName(name), "", ordered, visiting));
    return ordered;
  }

  absl::Status Insert(const ModuleFile& file, std::string_view options) override {
    kmod_ctx* ctx = image_.get();
    if (file.from_host) {
      ASSIGN_OR_RETURN(ctx, Host());
    }
    kmod_module* raw = nullptr;
    if (int err = kmod_module_new_from_path(ctx, file.path.c_str(), &raw); err < 0) {
      return ErrnoError(-err, fmt::format("open module {}", file.path));
    }
    ModulePtr module(raw);
    const std::string options_text(options);
    if (int err = kmod_module_insert_module(module.get(), 0, options_text.c_str()); err < 0) {
      return ErrnoError(-err, fmt::format("insert {}", file.name));
    }
    return absl::OkStatus();
  }

  absl::Status Remove(std::string_view name) override {
    ASSIGN_OR_RETURN(ModulePtr module, FromName(name));
    if (int err = kmod_module_remove_module(module.get(), 0); err < 0) {
      return ErrnoError(-err, fmt::format("remove {}", NormalizeModuleName(name)));
    }
    return absl::OkStatus();
  }

  ModuleState State(std::string_view name) override {
    absl::StatusOr<ModulePtr> module = FromName(name);
    if (!module.ok()) return ModuleState::kNotLoaded;
    switch (kmod_module_get_initstate(module->get())) {
      case KMOD_MODULE_BUILTIN:
        return ModuleState::kBuiltin;
      case KMOD_MODULE_LIVE:
        return ModuleState::kLive;
      case KMOD_MODULE_COMING:
        return ModuleState::kComing;
      case KMOD_MODULE_GOING:
        return ModuleState::kGoing;
      default:
        return ModuleState::kNotLoaded;
    }
  }

  std::vector<std::string> LoadedDependencies(std::string_view name) override {
    // The kernel records "B uses A" as A's holder B; invert it over the loaded modules.
    const std::string wanted = NormalizeModuleName(name);
    std::vector<std::string> dependencies;
    kmod_list* raw = nullptr;
    if (kmod_module_new_from_loaded(image_.get(), &raw) < 0) return dependencies;
    ModuleListPtr loaded(raw);
    kmod_list* entry;
    kmod_list_foreach(entry, loaded.get()) {
      kmod_module* module = kmod_module_get_module(entry);
      ModuleListPtr holders(kmod_module_get_holders(module));
      kmod_list* holder;
      kmod_list_foreach(holder, holders.get()) {
        ModulePtr holder_module(kmod_module_get_module(holder));
        if (wanted == kmod_module_get_name(holder_module.get())) {
          dependencies.emplace_back(kmod_module_get_name(module));
        }
      }
      kmod_module_unref(module);
    }
    return dependencies;
  }

  int Users(std::string_view name) override {
    absl::StatusOr<ModulePtr> module = FromName(name);
    if (!module.ok()) return 0;
    return std::max(kmod_module_get_refcnt(module->get()), Holders(name));
  }

  int Holders(std::string_view name) override {
    absl::StatusOr<ModulePtr> module = FromName(name);
    if (!module.ok()) return 0;
    ModuleListPtr holders(kmod_module_get_holders(module->get()));
    int count = 0;
    kmod_list* entry;
    kmod_list_foreach(entry, holders.get()) { ++count; }
    return count;
  }

  ModuleIdentity FileIdentity(const ModuleFile& file) override {
    ModuleIdentity identity{"", file.srcversion};
    absl::StatusOr<std::string> build_id = ReadModuleFileBuildId(file.path);
    if (build_id.ok()) {
      identity.build_id = *std::move(build_id);
    } else {
      spdlog::warn("cannot read the build-id of {}: {}", file.name, build_id.status().message());
    }
    return identity;
  }

 private:
  // The host's tree is opened only when the image lacks a module.
  absl::StatusOr<kmod_ctx*> Host() {
    if (!host_) {
      ASSIGN_OR_RETURN(host_, NewContext(host_dir_));
    }
    return host_.get();
  }

  absl::StatusOr<ModulePtr> FromName(std::string_view name) {
    kmod_module* raw = nullptr;
    const std::string normalized = NormalizeModuleName(name);
    // Loaded-module state comes from sysfs; any context will do.
    if (int err = kmod_module_new_from_name(image_.get(), normalized.c_str(), &raw); err < 0) {
      return ErrnoError(-err, fmt::format("libkmod: module {}", normalized));
    }
    return ModulePtr(raw);
  }

  // Depth-first over modinfo `depends`, appending each module after its dependencies.
  absl::Status ResolveInto(const std::string& name, const std::string& needed_by,
                           std::vector<ModuleFile>& ordered, std::set<std::string>& visiting) {
    if (std::any_of(ordered.begin(), ordered.end(),
                    [&](const ModuleFile& file) { return file.name == name; })) {
      return absl::OkStatus();
    }
    if (!visiting.insert(name).second) {
      return absl::FailedPreconditionError(fmt::format(
          "module {} depends on itself through {}; rebuild the modules", name, needed_by));
    }
    bool from_host = false;
    ModulePtr module = LookupModule(image_.get(), name);
    if (!module) {
      ASSIGN_OR_RETURN(kmod_ctx * host, Host());
      module = LookupModule(host, name);
      from_host = true;
    }
    if (!module) {
      const std::string who =
          needed_by.empty() ? "" : fmt::format(" (a dependency of {})", needed_by);
      return absl::NotFoundError(
          fmt::format("module {}{} not found in the module image's {} nor in the host's {}; check "
                      "moduleName/dirName, and that the image ran `depmod -b {}`",
                      name, who, image_dir_, host_dir_, image_root_));
    }
    if (kmod_module_get_initstate(module.get()) == KMOD_MODULE_BUILTIN &&
        kmod_module_get_path(module.get()) == nullptr) {
      visiting.erase(name);
      return absl::OkStatus();  // built into the kernel: nothing to load
    }
    ModuleFile file;
    file.name = kmod_module_get_name(module.get());
    file.path = kmod_module_get_path(module.get());
    file.from_host = from_host;
    const Modinfo modinfo = ReadModinfo(module.get());
    file.vermagic = modinfo.vermagic.substr(0, modinfo.vermagic.find(' '));
    file.srcversion = modinfo.srcversion;
    const std::string& depends = modinfo.depends;
    size_t start = 0;
    while (start < depends.size()) {
      size_t comma = depends.find(',', start);
      if (comma == std::string::npos) comma = depends.size();
      if (comma > start) {
        RETURN_IF_ERROR(ResolveInto(NormalizeModuleName(depends.substr(start, comma - start)),
                                    file.name, ordered, visiting));
      }
      start = comma + 1;
    }
    visiting.erase(name);
    ordered.push_back(std::move(file));
    return absl::OkStatus();
  }

  CtxPtr image_;
  CtxPtr host_;
  std::string image_root_;
  std::string image_dir_;
  std::string host_dir_;
};

}  // namespace

std::string_view ModuleStateName(ModuleState state) {
  switch (state) {
    case ModuleState::kNotLoaded:
      return "not loaded";
    case ModuleState::kBuiltin:
      return "built in";
    case ModuleState::kComing:
      return "loading";
    case ModuleState::kLive:
      return "live";
    case ModuleState::kGoing:
      return "unloading";
  }
  return "unknown";
}

std::string NormalizeModuleName(std::string_view name) {
  std::string normalized(name);
  std::replace(normalized.begin(), normalized.end(), '-', '_');
  return normalized;
}

absl::StatusOr<std::unique_ptr<KmodBackend>> MakeLibkmodBackend(std::string image_root,
                                                                std::string host_root,
                                                                std::string kernel_version) {
  const std::string image_dir = ModulesDir(image_root, kernel_version);
  const std::string host_dir = ModulesDir(host_root, kernel_version);
  ASSIGN_OR_RETURN(CtxPtr image, NewContext(image_dir));
  return std::unique_ptr<KmodBackend>(
      new LibkmodBackend(std::move(image), image_root, image_dir, host_dir));
}

}  // namespace kmm::loader
