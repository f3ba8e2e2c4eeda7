#include "operator/kube/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "common/status.h"
#include "fmt/format.h"

namespace kmm::kube {
namespace {

constexpr size_t kMaxCaptured = 4 << 20;

// A file descriptor closed with the object.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

absl::Status MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  // Close-on-exec, so a plugin another thread starts at the same time does not inherit them
  // (which would keep our read end from seeing end-of-file). dup2 onto 1 and 2 clears it.
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  return absl::OkStatus();
}

// Reads what `fd` has now into `out`; closes it at end-of-file.
void Drain(Fd& fd, std::string& out) {
  char buffer[16384];
  while (fd.get() >= 0) {
    const ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n > 0) {
      if (out.size() < kMaxCaptured)
        out.append(buffer, std::min<size_t>(n, kMaxCaptured - out.size()));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    fd.Close();  // end-of-file or an error
  }
}

class PosixSpawnRunner final : public ProcessRunner {
 public:
  absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec) override {
    Fd out_read, out_write, err_read, err_write;
    RETURN_IF_ERROR(MakePipe(out_read, out_write));
    RETURN_IF_ERROR(MakePipe(err_read, err_write));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
    // Its own process group, so a timeout kills whatever it started too.
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(
        &attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t no_signals, default_signals;
    sigemptyset(&no_signals);
    posix_spawnattr_setsigmask(&attributes, &no_signals);
    sigemptyset(&default_signals);
    for (int signal_number : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
      sigaddset(&default_signals, signal_number);
    }
    posix_spawnattr_setsigdefault(&attributes, &default_signals);

    std::vector<char*> argv, envp;
    for (const std::string& arg : spec.argv) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    for (const std::string& entry : spec.env) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int spawn_error =
        posix_spawn(&pid, spec.path.c_str(), &actions, &attributes, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (spawn_error != 0) return ErrnoError(spawn_error, fmt::format("cannot run {}", spec.path));
    out_write.Close();
    err_write.Close();

    ProcessResult result;
    const auto deadline =
        std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(spec.timeout);
    int wait_status = 0;
    bool exited = false;
    while (true) {
      if (!exited) {
        pid_t waited = waitpid(pid, &wait_status, WNOHANG);
        exited = waited == pid || (waited < 0 && errno != EINTR);
      }
      Drain(out_read, result.stdout_text);
      Drain(err_read, result.stderr_text);
      // Once it has exited we take what is in the pipes and stop: something it left running
      // in the background may hold them open.
      if (exited) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &wait_status, 0);
        result.timed_out = true;
        return result;
      }
      pollfd fds[2];
      nfds_t count = 0;
      for (const Fd* fd : {&out_read, &err_read}) {
        if (fd->get() >= 0) fds[count++] = {fd->get(), POLLIN, 0};
      }
      // Short polls: the exit is noticed by waitpid, not by the pipes closing.
      poll(fds, count, 50);
    }
    if (WIFSIGNALED(wait_status)) {
      result.term_signal = WTERMSIG(wait_status);
    } else if (WIFEXITED(wait_status)) {
      result.exit_code = WEXITSTATUS(wait_status);
    }
    return result;
  }
};

}  // namespace

ProcessRunner& RealProcessRunner() {
  static auto* runner = new PosixSpawnRunner();
  return *runner;
}

}  // namespace kmm::kube
