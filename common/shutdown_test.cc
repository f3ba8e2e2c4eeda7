#include "common/shutdown.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

namespace kmm {
namespace {

TEST(ShutdownSignal, SigtermRequestsShutdown) {
  auto shutdown = ShutdownSignal::Install();
  ASSERT_TRUE(shutdown.ok()) << shutdown.status();
  EXPECT_FALSE((*shutdown)->Requested());
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  EXPECT_TRUE((*shutdown)->WaitFor(absl::Seconds(10)));
  EXPECT_TRUE((*shutdown)->Requested());
  EXPECT_EQ((*shutdown)->signal_number(), SIGTERM);
}

TEST(ShutdownSignal, SigintRequestsShutdown) {
  auto shutdown = ShutdownSignal::Install();
  ASSERT_TRUE(shutdown.ok()) << shutdown.status();
  ASSERT_EQ(kill(getpid(), SIGINT), 0);
  (*shutdown)->Wait();
  EXPECT_EQ((*shutdown)->signal_number(), SIGINT);
}

TEST(ShutdownSignal, RepeatedSignalsDuringShutdownAreHarmless) {
  auto shutdown = ShutdownSignal::Install();
  ASSERT_TRUE(shutdown.ok()) << shutdown.status();
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  ASSERT_TRUE((*shutdown)->WaitFor(absl::Seconds(10)));
  // A second signal (an impatient kubelet or user) must neither kill the process nor
  // change which signal is reported, even after the watcher is gone.
  ASSERT_EQ(kill(getpid(), SIGINT), 0);
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  EXPECT_EQ((*shutdown)->signal_number(), SIGTERM);
  shutdown->reset();
  SUCCEED() << "process survived signals pending at destruction";
}

TEST(ShutdownSignal, RequestShutdownFromAnotherThreadWakesWaiters) {
  auto shutdown = ShutdownSignal::Install();
  ASSERT_TRUE(shutdown.ok()) << shutdown.status();
  ShutdownSignal* signal = shutdown->get();
  EXPECT_FALSE(signal->WaitFor(absl::Milliseconds(1)));
  std::thread requester([signal] { signal->RequestShutdown(); });
  EXPECT_TRUE(signal->WaitFor(absl::Seconds(10)));
  requester.join();
  EXPECT_EQ(signal->signal_number(), 0);
  signal->RequestShutdown();  // idempotent
  EXPECT_TRUE(signal->Requested());
}

TEST(ShutdownSignal, RestoresSignalMaskOnDestruction) {
  sigset_t before;
  pthread_sigmask(SIG_SETMASK, nullptr, &before);
  ASSERT_EQ(sigismember(&before, SIGTERM), 0);
  {
    auto shutdown = ShutdownSignal::Install();
    ASSERT_TRUE(shutdown.ok()) << shutdown.status();
    sigset_t during;
    pthread_sigmask(SIG_SETMASK, nullptr, &during);
    EXPECT_EQ(sigismember(&during, SIGTERM), 1);
  }
  sigset_t after;
  pthread_sigmask(SIG_SETMASK, nullptr, &after);
  EXPECT_EQ(sigismember(&after, SIGTERM), 0);
  EXPECT_EQ(sigismember(&after, SIGINT), 0);
}

}  // namespace
}  // namespace kmm
