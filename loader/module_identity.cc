#include "loader/module_identity.h"

#include <elf.h>
#include <lzma.h>
#include <zstd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include "common/status.h"
#include "fmt/format.h"

namespace kmm::loader {
namespace {

constexpr std::string_view kBuildIdSection = ".note.gnu.build-id";

size_t Align4(size_t size) { return (size + 3) & ~size_t{3}; }

template <typename T>
bool ReadAt(std::string_view bytes, size_t offset, T& out) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return true;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, fmt::format("open module {}", path));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return ErrnoError(errno, fmt::format("read module {}", path));
  return content;
}

bool StartsWith(std::string_view bytes, std::string_view magic) {
  return bytes.substr(0, magic.size()) == magic;
}

absl::StatusOr<std::string> Unzstd(std::string_view compressed, const std::string& path) {
  std::unique_ptr<ZSTD_DStream, decltype(&ZSTD_freeDStream)> stream(ZSTD_createDStream(),
                                                                    ZSTD_freeDStream);
  if (!stream) return absl::ResourceExhaustedError("zstd: cannot create a decoder");
  std::string out;
  std::string chunk(ZSTD_DStreamOutSize(), '\0');
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  while (true) {
    ZSTD_outBuffer buffer{chunk.data(), chunk.size(), 0};
    const size_t rc = ZSTD_decompressStream(stream.get(), &buffer, &in);
    if (ZSTD_isError(rc)) {
      return absl::DataLossError(fmt::format("module {}: zstd: {}", path, ZSTD_getErrorName(rc)));
    }
    out.append(chunk.data(), buffer.pos);
    if (rc == 0 || (in.pos == in.size && buffer.pos < buffer.size)) return out;
  }
}

absl::StatusOr<std::string> Unxz(std::string_view compressed, const std::string& path) {
  lzma_stream stream = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&stream, UINT64_MAX, 0) != LZMA_OK) {
    return absl::ResourceExhaustedError("xz: cannot create a decoder");
  }
  std::unique_ptr<lzma_stream, decltype(&lzma_end)> owner(&stream, lzma_end);
  stream.next_in = reinterpret_cast<const uint8_t*>(compressed.data());
  stream.avail_in = compressed.size();
  std::string out;
  uint8_t chunk[64 * 1024];
  while (true) {
    stream.next_out = chunk;
    stream.avail_out = sizeof(chunk);
    const lzma_ret rc = lzma_code(&stream, LZMA_FINISH);
    out.append(reinterpret_cast<const char*>(chunk), sizeof(chunk) - stream.avail_out);
    if (rc == LZMA_STREAM_END) return out;
    if (rc != LZMA_OK) return absl::DataLossError(fmt::format("module {}: xz error {}", path, +rc));
  }
}

}  // namespace

std::string BuildIdFromNotes(std::string_view notes) {
  size_t offset = 0;
  Elf64_Nhdr header;
  while (ReadAt(notes, offset, header)) {
    const size_t name_at = offset + sizeof(header);
    const size_t desc_at = name_at + Align4(header.n_namesz);
    const size_t next = desc_at + Align4(header.n_descsz);
    if (next > notes.size() || next <= offset) return "";
    const std::string_view name = notes.substr(name_at, header.n_namesz);
    if (header.n_type == NT_GNU_BUILD_ID && name == std::string_view("GNU\0", 4)) {
      std::string hex;
      for (unsigned char byte : notes.substr(desc_at, header.n_descsz)) {
        hex += fmt::format("{:02x}", byte);
      }
      return hex;
    }
    offset = next;
  }
  return "";
}

absl::StatusOr<std::string> BuildIdFromElf(std::string_view elf) {
  Elf64_Ehdr header;
  if (!ReadAt(elf, 0, header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != ELFCLASS64) {
    return absl::InvalidArgumentError("not a 64-bit ELF object");
  }
  auto section = [&](size_t index, Elf64_Shdr& out) {
    return header.e_shentsize == sizeof(Elf64_Shdr) &&
           ReadAt(elf, header.e_shoff + index * sizeof(Elf64_Shdr), out);
  };
  Elf64_Shdr names;
  if (!section(header.e_shstrndx, names) || names.sh_offset > elf.size()) {
    return absl::InvalidArgumentError("ELF section names are unreadable");
  }
  const std::string_view strings = elf.substr(names.sh_offset, names.sh_size);
  for (size_t i = 0; i < header.e_shnum; ++i) {
    Elf64_Shdr candidate;
    if (!section(i, candidate) || candidate.sh_name >= strings.size()) continue;
    const std::string_view name = strings.substr(candidate.sh_name);
    if (name.substr(0, name.find('\0')) != kBuildIdSection) continue;
    if (candidate.sh_offset > elf.size()) break;
    return BuildIdFromNotes(elf.substr(candidate.sh_offset, candidate.sh_size));
  }
  return std::string();
}

absl::StatusOr<std::string> ReadModuleFileBuildId(const std::string& path) {
  ASSIGN_OR_RETURN(std::string content, ReadWholeFile(path));
  if (StartsWith(content, "\x28\xb5\x2f\xfd")) {
    ASSIGN_OR_RETURN(content, Unzstd(content, path));
  } else if (StartsWith(content, std::string_view("\xfd"
                                                  "7zXZ\0",
                                                  6))) {
    ASSIGN_OR_RETURN(content, Unxz(content, path));
  }
  absl::StatusOr<std::string> build_id = BuildIdFromElf(content);
  if (!build_id.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("module {}: {} (plain, zstd- or xz-compressed modules are understood)", path,
                    build_id.status().message()));
  }
  return build_id;
}

ModuleIdentity ReadLoadedIdentity(const std::string& sys_root, std::string_view name) {
  const std::string dir = fmt::format("{}/module/{}", sys_root, name);
  ModuleIdentity identity;
  {
    std::ifstream notes(dir + "/notes/" + std::string(kBuildIdSection), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(notes)),
                            std::istreambuf_iterator<char>());
    identity.build_id = BuildIdFromNotes(bytes);
  }
  std::ifstream srcversion(dir + "/srcversion");
  std::getline(srcversion, identity.srcversion);
  return identity;
}

IdentityComparison CompareIdentities(const ModuleIdentity& loaded, const ModuleIdentity& file) {
  using Verdict = IdentityComparison::Verdict;
  auto compare = [](std::string kind, const std::string& a, const std::string& b) {
    return IdentityComparison{a == b ? Verdict::kSame : Verdict::kDifferent, std::move(kind), a, b};
  };
  if (!loaded.build_id.empty() && !file.build_id.empty()) {
    return compare("build-id", loaded.build_id, file.build_id);
  }
  if (!loaded.srcversion.empty() && !file.srcversion.empty()) {
    return compare("srcversion", loaded.srcversion, file.srcversion);
  }
  return IdentityComparison{};
}

}  // namespace kmm::loader
