#include "loader/plugin_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace kmm::loader {
namespace {

// The child's descriptor for its readiness pipe (kmm-device-plugin --ready-fd).
constexpr int kReadyFd = 3;

std::string DescribeExit(int code, int status) {
  if (code == CLD_EXITED) return fmt::format("exited with status {}", status);
  const char* name = sigabbrev_np(status);
  return fmt::format("was killed by SIG{}", name != nullptr ? name : std::to_string(status));
}

std::string DescribeWaitStatus(int status) {
  return WIFEXITED(status) ? DescribeExit(CLD_EXITED, WEXITSTATUS(status))
                           : DescribeExit(CLD_KILLED, WTERMSIG(status));
}

// This process's environment with the plugin's config added (replacing any inherited one).
std::vector<std::string> ChildEnvironment(const std::string& config_json) {
  const std::string prefix = fmt::format("{}=", kDevicePluginConfigEnv);
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, prefix.data(), prefix.size()) != 0) env.emplace_back(*entry);
  }
  env.push_back(prefix + config_json);
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Starts the child with the readiness pipe's write end as its kReadyFd, the shutdown signals
// unblocked (kmm-loader blocks them for its signalfd) and at their default action.
absl::StatusOr<pid_t> Spawn(const DevicePluginProcessOptions& options, int ready_write_fd) {
  std::vector<std::string> args = {options.binary, "--config-env", kDevicePluginConfigEnv,
                                   "--ready-fd", std::to_string(kReadyFd)};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<std::string> env = ChildEnvironment(options.config_json);
  std::vector<char*> argv = Pointers(args);
  std::vector<char*> envp = Pointers(env);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, ready_write_fd, kReadyFd);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGTERM);
  sigaddset(&shutdown_signals, SIGINT);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &shutdown_signals);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int err =
      posix_spawn(&pid, options.binary.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return ErrnoError(err, fmt::format("cannot start the device plugin {}", options.binary));
  }
  return pid;
}

// What the child wrote on the readiness pipe before it closed it or `timeout` passed.
absl::StatusOr<std::string> ReadReadiness(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string text;
  while (text.find('\n') == std::string::npos) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return absl::DeadlineExceededError("timed out");
    pollfd readable = {fd, POLLIN, 0};
    const int ready = poll(&readable, 1, static_cast<int>(left_ms));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ErrnoError(errno, "poll the readiness pipe");
    if (ready == 0) continue;
    char buffer[64];
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed: the child exited (or failed) before it was ready
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DevicePluginProcess>> DevicePluginProcess::Start(
    const DevicePluginProcessOptions& options, std::function<void()> on_unexpected_exit) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe for the device plugin");
  absl::StatusOr<pid_t> pid = Spawn(options, ready[1]);
  close(ready[1]);  // the child holds the only write end now, so its exit closes the pipe
  if (!pid.ok()) {
    close(ready[0]);
    return pid.status();
  }
  spdlog::info("started the device plugin {} (pid {})", options.binary, *pid);
  absl::StatusOr<std::string> readiness = ReadReadiness(ready[0], options.start_timeout);
  close(ready[0]);
  if (readiness.ok() && readiness->starts_with("ready")) {
    return std::unique_ptr<DevicePluginProcess>(
        new DevicePluginProcess(*pid, options, std::move(on_unexpected_exit)));
  }
  // Not serving: make sure it is gone, and say how it ended.
  if (!readiness.ok()) kill(*pid, SIGKILL);
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!readiness.ok()) {
    return absl::DeadlineExceededError(
        fmt::format("the device plugin {} did not serve within {}; it was stopped", options.binary,
                    absl::FormatDuration(options.start_timeout)));
  }
  return absl::UnavailableError(
      fmt::format("the device plugin {} {} before it served (its log "
                  "above says why)",
                  options.binary, DescribeWaitStatus(status)));
}

DevicePluginProcess::DevicePluginProcess(pid_t pid, DevicePluginProcessOptions options,
                                         std::function<void()> on_unexpected_exit)
    : pid_(pid), options_(std::move(options)), on_unexpected_exit_(std::move(on_unexpected_exit)) {
  monitor_ = std::thread([this] { Monitor(); });
}

DevicePluginProcess::~DevicePluginProcess() { Stop().IgnoreError(); }

void DevicePluginProcess::Monitor() {
  // WNOWAIT leaves the child a zombie, so its pid cannot be reused while Signal() may still
  // use it; it is reaped below, under the lock, once exited_ says so.
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  const std::string how = DescribeExit(info.si_code, info.si_status);
  bool unexpected = false;
  {
    absl::MutexLock lock(&mu_);
    exited_ = true;
    exited_cleanly_ = info.si_code == CLD_EXITED && info.si_status == 0;
    how_it_ended_ = how;
    unexpected = exited_unexpectedly_ = !stopping_;
    waitpid(pid_, nullptr, 0);
  }
  if (unexpected) {
    spdlog::error("the device plugin {} {}", options_.binary, how);
    if (on_unexpected_exit_) on_unexpected_exit_();
  }
}

void DevicePluginProcess::Signal(int signal) {
  absl::MutexLock lock(&mu_);
  if (!exited_) kill(pid_, signal);
}

absl::Status DevicePluginProcess::Stop() {
  if (!monitor_.joinable()) return absl::OkStatus();  // stopped already
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Signal(SIGTERM);
  bool exited = false;
  {
    absl::MutexLock lock(&mu_);
    exited = mu_.AwaitWithTimeout(absl::Condition(&exited_), options_.stop_timeout);
  }
  if (!exited) {
    spdlog::warn("the device plugin {} did not stop within {} of SIGTERM; killing it",
                 options_.binary, absl::FormatDuration(options_.stop_timeout));
    Signal(SIGKILL);
  }
  monitor_.join();
  absl::MutexLock lock(&mu_);
  if (exited_cleanly_) return absl::OkStatus();
  return absl::InternalError(
      fmt::format("the device plugin {} {}", options_.binary, how_it_ended_));
}

std::optional<std::string> DevicePluginProcess::UnexpectedExit() const {
  absl::MutexLock lock(&mu_);
  if (!exited_unexpectedly_) return std::nullopt;
  return how_it_ended_;
}

std::string DefaultDevicePluginBinary(const std::string& self) {
  return (std::filesystem::path(self).parent_path() / "kmm-device-plugin").string();
}

}  // namespace kmm::loader
