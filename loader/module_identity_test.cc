#include "loader/module_identity.h"

#include <elf.h>
#include <gtest/gtest.h>
#include <lzma.h>
#include <zstd.h>

#include <fstream>
#include <iterator>

#include "common/testing/temp_dir.h"

namespace kmm::loader {
namespace {

// One ELF note as the linker writes it and the kernel shows it in sysfs.
std::string Note(uint32_t type, std::string_view name, std::string_view desc) {
  Elf64_Nhdr header{static_cast<Elf64_Word>(name.size()), static_cast<Elf64_Word>(desc.size()),
                    type};
  std::string note(reinterpret_cast<const char*>(&header), sizeof(header));
  note += name;
  note.resize((note.size() + 3) & ~size_t{3}, '\0');
  note += desc;
  note.resize((note.size() + 3) & ~size_t{3}, '\0');
  return note;
}

std::string ReadBinary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(BuildIdFromNotes, FindsTheGnuBuildIdAmongNotes) {
  const std::string notes = Note(1, std::string_view("Linux\0", 6), "xyz") +
                            Note(NT_GNU_BUILD_ID, std::string_view("GNU\0", 4), "\x01\xab\xff");
  EXPECT_EQ(BuildIdFromNotes(notes), "01abff");
  EXPECT_EQ(BuildIdFromNotes(""), "");
  EXPECT_EQ(BuildIdFromNotes(notes.substr(0, notes.size() - 4)), "")
      << "a truncated note is no build-id";
}

TEST(BuildIdFromElf, ReadsAnElfFilesBuildIdPlainAndCompressed) {
  // A small ELF file every Debian system has, linked with --build-id as kbuild links modules
  // (this test binary would do too, but compressing its 40 MB takes seconds).
  const std::string elf = ReadBinary("/bin/true");
  absl::StatusOr<std::string> plain = BuildIdFromElf(elf);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_EQ(plain->size(), 40u) << *plain;
  EXPECT_FALSE(BuildIdFromElf("not an ELF file").ok());

  testing::TempDir dir;
  std::string zst(ZSTD_compressBound(elf.size()), '\0');
  zst.resize(ZSTD_compress(zst.data(), zst.size(), elf.data(), elf.size(), 1));
  std::string xz(lzma_stream_buffer_bound(elf.size()), '\0');
  size_t xz_size = 0;
  ASSERT_EQ(lzma_easy_buffer_encode(0, LZMA_CHECK_CRC32, nullptr,
                                    reinterpret_cast<const uint8_t*>(elf.data()), elf.size(),
                                    reinterpret_cast<uint8_t*>(xz.data()), &xz_size, xz.size()),
            LZMA_OK);
  xz.resize(xz_size);
  for (const auto& [name, content] :
       {std::pair{"m.ko", elf}, std::pair{"m.ko.zst", zst}, std::pair{"m.ko.xz", xz}}) {
    absl::StatusOr<std::string> read = ReadModuleFileBuildId(dir.WriteFile(name, content));
    ASSERT_TRUE(read.ok()) << name << ": " << read.status();
    EXPECT_EQ(*read, *plain) << name;
  }
  const absl::Status garbage = ReadModuleFileBuildId(dir.WriteFile("bad.ko", "junk")).status();
  EXPECT_NE(garbage.message().find("bad.ko"), std::string::npos) << garbage;
  EXPECT_FALSE(ReadModuleFileBuildId(dir.Join("missing.ko")).ok());
}

TEST(ReadLoadedIdentity, ReadsSysfsNotesAndSrcversion) {
  testing::TempDir dir;
  EXPECT_EQ(ReadLoadedIdentity(dir.Join("sys"), "kmm_ci_a").build_id, "");
  dir.WriteFile("sys/module/kmm_ci_a/notes/.note.gnu.build-id",
                Note(NT_GNU_BUILD_ID, std::string_view("GNU\0", 4), "\x12\x34"));
  dir.WriteFile("sys/module/kmm_ci_a/srcversion", "ABC123\n");
  const ModuleIdentity identity = ReadLoadedIdentity(dir.Join("sys"), "kmm_ci_a");
  EXPECT_EQ(identity.build_id, "1234");
  EXPECT_EQ(identity.srcversion, "ABC123");
}

TEST(CompareIdentities, BuildIdFirstThenSrcversionElseUnknown) {
  using Verdict = IdentityComparison::Verdict;
  IdentityComparison same = CompareIdentities({"aa", "S1"}, {"aa", "S2"});
  EXPECT_EQ(same.verdict, Verdict::kSame) << "the build-id decides when both have one";
  IdentityComparison differs = CompareIdentities({"aa", "S"}, {"bb", "S"});
  EXPECT_EQ(differs.verdict, Verdict::kDifferent);
  EXPECT_EQ(differs.kind, "build-id");
  EXPECT_EQ(differs.loaded, "aa");
  EXPECT_EQ(differs.file, "bb");
  IdentityComparison by_srcversion = CompareIdentities({"", "S1"}, {"bb", "S2"});
  EXPECT_EQ(by_srcversion.verdict, Verdict::kDifferent);
  EXPECT_EQ(by_srcversion.kind, "srcversion");
  EXPECT_EQ(CompareIdentities({"aa", ""}, {"", "S"}).verdict, Verdict::kUnknown);
}

}  // namespace
}  // namespace kmm::loader
