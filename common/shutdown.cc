#include "common/shutdown.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/status.h"
#include "spdlog/spdlog.h"

namespace kmm {
namespace {
sigset_t ShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}
}  // namespace

absl::StatusOr<std::unique_ptr<ShutdownSignal>> ShutdownSignal::Install() {
  const sigset_t signals = ShutdownSignals();
  sigset_t previous;
  if (int err = pthread_sigmask(SIG_BLOCK, &signals, &previous); err != 0) {
    return ErrnoError(err, "block SIGTERM/SIGINT");
  }
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  const int signal_errno = errno;
  const int wake_fd = signal_fd < 0 ? -1 : eventfd(0, EFD_CLOEXEC);
  if (signal_fd < 0 || wake_fd < 0) {
    const int err = signal_fd < 0 ? signal_errno : errno;
    if (signal_fd >= 0) close(signal_fd);
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return ErrnoError(err, signal_fd < 0 ? "signalfd" : "eventfd");
  }
  return std::unique_ptr<ShutdownSignal>(new ShutdownSignal(signal_fd, wake_fd, previous));
}

ShutdownSignal::ShutdownSignal(int signal_fd, int wake_fd, const sigset_t& previous_mask)
    : signal_fd_(signal_fd), wake_fd_(wake_fd), previous_mask_(previous_mask) {
  watcher_ = std::thread([this] { WatchLoop(); });
}

ShutdownSignal::~ShutdownSignal() {
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) != sizeof(one)) {
    spdlog::error("shutdown watcher: cannot wake the watcher thread: {}", std::strerror(errno));
  }
  watcher_.join();
  // Drain signals that arrived after the watcher stopped, so restoring the old mask does
  // not let their default action kill the process.
  signalfd_siginfo info;
  pollfd fd = {signal_fd_, POLLIN, 0};
  while (poll(&fd, 1, 0) == 1 && read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
  }
  close(signal_fd_);
  close(wake_fd_);
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
}

void ShutdownSignal::WatchLoop() {
  pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("shutdown watcher: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    signalfd_siginfo info;
    if (fds[0].revents == 0 || read(signal_fd_, &info, sizeof(info)) != sizeof(info)) continue;
    const int sig = static_cast<int>(info.ssi_signo);
    if (Requested()) {
      spdlog::warn("received SIG{} again; shutdown is already in progress", sigabbrev_np(sig));
      continue;
    }
    spdlog::info("received SIG{}; shutting down", sigabbrev_np(sig));
    Request(sig);
  }
}

void ShutdownSignal::Request(int signal_number) {
  absl::MutexLock lock(&mu_);
  if (requested_) return;
  requested_ = true;
  signal_number_ = signal_number;
}

void ShutdownSignal::RequestShutdown() { Request(0); }

bool ShutdownSignal::Requested() const {
  absl::MutexLock lock(&mu_);
  return requested_;
}

int ShutdownSignal::signal_number() const {
  absl::MutexLock lock(&mu_);
  return signal_number_;
}

void ShutdownSignal::Wait() const {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&requested_));
}

bool ShutdownSignal::WaitFor(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&requested_), timeout);
}

}  // namespace kmm
