#include "loader/firmware.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "common/testing/temp_dir.h"

namespace kmm::loader {
namespace {

using testing::ReadFile;
using testing::TempDir;

TEST(Firmware, InstallsAndRemovesOnlyTheImagesFiles) {
  TempDir dir;
  dir.WriteFile("image/firmware/kmm-ci-a.bin", "blob-a");
  dir.WriteFile("image/firmware/vendor/kmm-ci-b.bin", "blob-b");
  dir.WriteFile("host/other-driver.bin", "not ours");
  absl::StatusOr<std::vector<std::string>> copied =
      InstallFirmware(dir.Join("image/firmware"), dir.Join("host"));
  ASSERT_TRUE(copied.ok()) << copied.status();
  std::sort(copied->begin(), copied->end());
  EXPECT_EQ(*copied, (std::vector<std::string>{"kmm-ci-a.bin", "vendor/kmm-ci-b.bin"}));
  EXPECT_EQ(ReadFile(dir.Join("host/kmm-ci-a.bin")), "blob-a");
  EXPECT_EQ(ReadFile(dir.Join("host/vendor/kmm-ci-b.bin")), "blob-b");

  ASSERT_TRUE(RemoveFirmware(dir.Join("image/firmware"), dir.Join("host")).ok());
  EXPECT_FALSE(std::filesystem::exists(dir.Join("host/kmm-ci-a.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir.Join("host/vendor")));
  EXPECT_EQ(ReadFile(dir.Join("host/other-driver.bin")), "not ours");
}

TEST(Firmware, MissingSourceIsAClearErrorOnInstallAndNothingOnRemove) {
  TempDir dir;
  absl::StatusOr<std::vector<std::string>> copied =
      InstallFirmware(dir.Join("image/nope"), dir.Join("host"));
  EXPECT_EQ(copied.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(copied.status().message().find("config.firmwarePath"), std::string::npos);
  EXPECT_TRUE(RemoveFirmware(dir.Join("image/nope"), dir.Join("host")).ok());
}

TEST(Firmware, SetsTheKernelSearchPath) {
  TempDir dir;
  const std::string parameter = dir.WriteFile("sys/module/firmware_class/parameters/path", "\n");
  ASSERT_TRUE(SetFirmwareSearchPath(dir.Join("sys"), "/var/lib/firmware").ok());
  EXPECT_EQ(ReadFile(parameter), "/var/lib/firmware");
  EXPECT_FALSE(SetFirmwareSearchPath(dir.Join("missing"), "/x").ok());
}

}  // namespace
}  // namespace kmm::loader
