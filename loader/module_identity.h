// Which build of a module is which (docs/design.md §2, "Which build is loaded"). A node can
// keep an older build of a module loaded after an unload failed while it was in use; a new
// loader must not take that for the build its module image carries. The identity is the GNU
// build-id the linker writes into every module (a hash of the linked object: any change to
// source, compile flags or compiler changes it), which the kernel shows for a loaded module in
// /sys/module/<m>/notes/.note.gnu.build-id. The fallback is modinfo's srcversion (a hash of the
// sources), which Debian's kernel (no CONFIG_MODULE_SRCVERSION_ALL) only records for modules
// with MODULE_VERSION. When neither is known on both sides, the builds cannot be told apart.
#ifndef KMM_LOADER_MODULE_IDENTITY_H_
#define KMM_LOADER_MODULE_IDENTITY_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kmm::loader {

struct ModuleIdentity {
  std::string build_id;    // lowercase hex of the NT_GNU_BUILD_ID note; empty when unknown
  std::string srcversion;  // modinfo srcversion; empty when the module has none
};

// The build-id in a block of ELF notes (a .note.gnu.build-id section, or the kernel's sysfs
// file of it); empty when there is none or the block is malformed.
std::string BuildIdFromNotes(std::string_view notes);

// The build-id of an ELF object (a .ko, already decompressed) from its .note.gnu.build-id
// section. Empty when it has no such section; an error when it is not a 64-bit ELF file.
absl::StatusOr<std::string> BuildIdFromElf(std::string_view elf);

// The build-id of a module file: plain, or compressed with zstd or xz as distributions ship
// them. Errors name the file.
absl::StatusOr<std::string> ReadModuleFileBuildId(const std::string& path);

// What the kernel says of loaded module `name`: <sys_root>/module/<name>/notes/
// .note.gnu.build-id and <sys_root>/module/<name>/srcversion; unreadable parts stay empty.
ModuleIdentity ReadLoadedIdentity(const std::string& sys_root, std::string_view name);

// How a loaded module compares with a module file.
struct IdentityComparison {
  enum class Verdict { kSame, kDifferent, kUnknown } verdict = Verdict::kUnknown;
  std::string kind;    // "build-id" or "srcversion": what was compared
  std::string loaded;  // the loaded module's value of it
  std::string file;    // the module file's value of it
};

// Compares build-ids when both sides have one, else srcversions when both have one, else
// kUnknown.
IdentityComparison CompareIdentities(const ModuleIdentity& loaded, const ModuleIdentity& file);

}  // namespace kmm::loader

#endif  // KMM_LOADER_MODULE_IDENTITY_H_
