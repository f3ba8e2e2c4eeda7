// DevicePluginProcess against real child processes: small shell scripts that play
// kmm-device-plugin's side of the protocol (the real plugin runs under it in the qemu e2e).
#include "loader/plugin_process.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "absl/synchronization/notification.h"
#include "common/testing/temp_dir.h"

namespace kmm::loader {
namespace {

using testing::ReadFile;
using testing::TempDir;

// Writes an executable script whose body follows a shebang; `DIR` in it becomes the dir.
std::string WritePlugin(const TempDir& dir, std::string body) {
  for (size_t at = body.find("DIR"); at != std::string::npos; at = body.find("DIR", at)) {
    body.replace(at, 3, dir.path());
  }
  const std::string path = dir.WriteFile("kmm-device-plugin", "#!/bin/sh\n" + body);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

DevicePluginProcessOptions Options(const std::string& binary) {
  DevicePluginProcessOptions options;
  options.binary = binary;
  options.config_json = R"({"resources":[]})";
  options.extra_args = {"--device-plugin-dir", "/var/lib/kubelet/device-plugins"};
  options.start_timeout = absl::Seconds(10);
  options.stop_timeout = absl::Seconds(10);
  return options;
}

// Serves until SIGTERM, then records that it stopped and exits 0.
constexpr char kWellBehaved[] = R"(echo "$@" > DIR/args
printf '%s' "$KMM_DEVICE_PLUGIN_CONFIG" > DIR/config
trap 'echo stopped > DIR/stopped; exit 0' TERM
echo ready >&3
exec 3>&-
while :; do sleep 0.05; done
)";

TEST(DevicePluginProcess, StartsWithTheConfigAndStopsWithSigterm) {
  TempDir dir;
  auto plugin = DevicePluginProcess::Start(Options(WritePlugin(dir, kWellBehaved)), nullptr);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ(ReadFile(dir.Join("config")), R"({"resources":[]})");
  EXPECT_EQ(ReadFile(dir.Join("args")),
            "--config-env KMM_DEVICE_PLUGIN_CONFIG --ready-fd 3 "
            "--device-plugin-dir /var/lib/kubelet/device-plugins\n");
  EXPECT_FALSE(std::filesystem::exists(dir.Join("stopped")));

  EXPECT_TRUE((*plugin)->Stop().ok());
  EXPECT_EQ(ReadFile(dir.Join("stopped")), "stopped\n");
  EXPECT_EQ((*plugin)->UnexpectedExit(), std::nullopt);
  EXPECT_TRUE((*plugin)->Stop().ok());  // a second Stop has nothing to do
}

TEST(DevicePluginProcess, ExitBeforeServingFailsSayingHow) {
  TempDir dir;
  const std::string binary = WritePlugin(dir, "echo 'bad config' >&2\nexit 3\n");
  auto plugin = DevicePluginProcess::Start(Options(binary), nullptr);
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(plugin.status().message().find(binary + " exited with status 3 before it served"),
            std::string::npos)
      << plugin.status();
}

TEST(DevicePluginProcess, NotServingInTimeIsKilledAndFails) {
  TempDir dir;
  DevicePluginProcessOptions options = Options(WritePlugin(dir, "exec sleep 60\n"));
  options.start_timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  auto plugin = DevicePluginProcess::Start(options, nullptr);
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(plugin.status().message().find("did not serve within 300ms"), std::string::npos)
      << plugin.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(DevicePluginProcess, MissingBinaryIsAClearError) {
  TempDir dir;
  auto plugin = DevicePluginProcess::Start(Options(dir.Join("nope")), nullptr);
  ASSERT_FALSE(plugin.ok());
  EXPECT_NE(plugin.status().message().find("cannot start the device plugin " + dir.Join("nope")),
            std::string::npos)
      << plugin.status();
  EXPECT_NE(plugin.status().message().find("No such file"), std::string::npos) << plugin.status();
}

TEST(DevicePluginProcess, ExitWhileServingIsReportedOnce) {
  TempDir dir;
  absl::Notification exited;
  const std::string binary = WritePlugin(dir, "echo ready >&3\nexec 3>&-\nsleep 0.2\nexit 1\n");
  auto plugin = DevicePluginProcess::Start(Options(binary), [&exited] { exited.Notify(); });
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  ASSERT_TRUE(exited.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ((*plugin)->UnexpectedExit(), "exited with status 1");
  absl::Status stopped = (*plugin)->Stop();
  EXPECT_EQ(stopped.message(), "the device plugin " + binary + " exited with status 1");
  EXPECT_EQ((*plugin)->UnexpectedExit(), "exited with status 1");
}

TEST(DevicePluginProcess, IgnoringSigtermIsKilledAfterTheStopTimeout) {
  TempDir dir;
  DevicePluginProcessOptions options = Options(
      WritePlugin(dir, "trap '' TERM\necho ready >&3\nexec 3>&-\nwhile :; do sleep 0.05; done\n"));
  options.stop_timeout = absl::Milliseconds(300);
  bool exit_reported = false;
  auto plugin = DevicePluginProcess::Start(options, [&] { exit_reported = true; });
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  absl::Status stopped = (*plugin)->Stop();
  EXPECT_NE(stopped.message().find("was killed by SIGKILL"), std::string::npos) << stopped;
  EXPECT_FALSE(exit_reported);  // it was asked to stop: not unexpected
  EXPECT_EQ((*plugin)->UnexpectedExit(), std::nullopt);
}

TEST(DevicePluginProcess, DefaultBinaryIsBesideTheLoader) {
  EXPECT_EQ(DefaultDevicePluginBinary("/usr/local/bin/kmm-loader"),
            "/usr/local/bin/kmm-device-plugin");
}

}  // namespace
}  // namespace kmm::loader
