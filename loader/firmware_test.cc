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
  const std::string host = dir.Join("host-firmware");  // saves the previous value there
  ASSERT_TRUE(SetFirmwareSearchPath(dir.Join("sys"), host).ok());
  EXPECT_EQ(ReadFile(parameter), host);
  EXPECT_FALSE(SetFirmwareSearchPath(dir.Join("missing"), "/x").ok());
}

// The kernel's parameter, as a file under a fake sys root, holding `value` as sysfs shows it.
class SearchPath : public ::testing::Test {
 protected:
  std::string Parameter(const std::string& value) {
    return dir_.WriteFile("sys/module/firmware_class/parameters/path", value + "\n");
  }
  std::string Value() {
    std::string value = ReadFile(dir_.Join("sys/module/firmware_class/parameters/path"));
    while (!value.empty() && value.back() == '\n') value.pop_back();
    return value;
  }
  absl::Status Load(const std::string& user) {
    absl::Status added = AddFirmwareUser(host_, user);
    return added.ok() ? SetFirmwareSearchPath(dir_.Join("sys"), host_) : added;
  }
  absl::Status Unload(const std::string& user) {
    absl::Status removed = RemoveFirmwareUser(host_, user);
    return removed.ok() ? RestoreFirmwareSearchPath(dir_.Join("sys"), host_) : removed;
  }

  TempDir dir_;
  const std::string host_ = dir_.Join("host-firmware");
};

TEST_F(SearchPath, RestoresThePreviousValueKmmReplacedOnTheLastUnload) {
  Parameter("/opt/vendor-firmware");
  ASSERT_TRUE(Load("kmm_ci_a").ok());
  EXPECT_EQ(Value(), host_);
  ASSERT_TRUE(Unload("kmm_ci_a").ok());
  EXPECT_EQ(Value(), "/opt/vendor-firmware");
  EXPECT_TRUE(std::filesystem::is_empty(host_)) << "kmm's bookkeeping goes with the last user";
}

TEST_F(SearchPath, KeepsItWhileAnotherModuleStillHasFirmwareThere) {
  Parameter("/opt/vendor-firmware");
  ASSERT_TRUE(Load("kmm_ci_a").ok());
  ASSERT_TRUE(Load("kmm_ci_b").ok());
  ASSERT_TRUE(Unload("kmm_ci_a").ok());
  EXPECT_EQ(Value(), host_) << "kmm_ci_b's firmware is still there";
  ASSERT_TRUE(Unload("kmm_ci_b").ok());
  EXPECT_EQ(Value(), "/opt/vendor-firmware");
}

TEST_F(SearchPath, ThePreviousValueSurvivesALoaderRestart) {
  Parameter("/opt/vendor-firmware");
  ASSERT_TRUE(Load("kmm_ci_a").ok());
  // A new loader process (the container restarted) loads again: the value is already kmm's.
  ASSERT_TRUE(Load("kmm_ci_a").ok());
  ASSERT_TRUE(Unload("kmm_ci_a").ok());
  EXPECT_EQ(Value(), "/opt/vendor-firmware");
}

TEST_F(SearchPath, LeavesAValueKmmDidNotSet) {
  Parameter(host_);  // the administrator set it
  ASSERT_TRUE(Load("kmm_ci_a").ok());
  ASSERT_TRUE(Unload("kmm_ci_a").ok());
  EXPECT_EQ(Value(), host_);
}

TEST_F(SearchPath, LeavesAValueChangedSinceKmmSetIt) {
  Parameter("/opt/vendor-firmware");
  ASSERT_TRUE(Load("kmm_ci_a").ok());
  Parameter("/srv/other-firmware");
  ASSERT_TRUE(Unload("kmm_ci_a").ok());
  EXPECT_EQ(Value(), "/srv/other-firmware");
}

TEST_F(SearchPath, RestoresAnEmptyValueWithANulByte) {
  Parameter("");
  ASSERT_TRUE(Load("kmm_ci_a").ok());
  ASSERT_TRUE(Unload("kmm_ci_a").ok());
  // An empty write never reaches the kernel's parameter; a lone NUL sets it to "".
  EXPECT_EQ(ReadFile(dir_.Join("sys/module/firmware_class/parameters/path")), std::string(1, '\0'));
}

}  // namespace
}  // namespace kmm::loader
