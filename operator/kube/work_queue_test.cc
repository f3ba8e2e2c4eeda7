#include "operator/kube/work_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/clock.h"

namespace kmm::kube {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(10);

TEST(WorkQueue, AddingAWaitingKeyAgainQueuesItOnce) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  queue.Add("ns/b");
  queue.Add("ns/a");
  EXPECT_EQ(queue.Len(), 2u);
  EXPECT_EQ(queue.Get(), "ns/a");
  EXPECT_EQ(queue.Get(), "ns/b");
  EXPECT_EQ(queue.Len(), 0u);
}

TEST(WorkQueue, KeyAddedWhileProcessingIsQueuedAgainOnlyAfterDone) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Add("ns/a");
  queue.Add("ns/a");
  EXPECT_EQ(queue.Len(), 0u) << "a key being processed must not be handed out again";
  queue.Done("ns/a");
  EXPECT_EQ(queue.Len(), 1u);
  EXPECT_EQ(queue.Get(), "ns/a");
  queue.Done("ns/a");
  EXPECT_EQ(queue.Len(), 0u) << "the two adds during processing make one more pass, not two";
}

TEST(WorkQueue, KeyDoneWithoutNewAddIsNotQueuedAgain) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Done("ns/a");
  EXPECT_EQ(queue.Len(), 0u);
}

TEST(WorkQueue, NeverHandsOneKeyToTwoWorkersAtOnce) {
  WorkQueue queue;
  absl::Mutex mu;
  std::map<std::string, int> active;
  std::map<std::string, int> most_active;
  std::map<std::string, int> processed;

  std::vector<std::thread> workers;
  workers.reserve(4);
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      while (std::optional<std::string> key = queue.Get()) {
        {
          absl::MutexLock lock(&mu);
          const int now_active = ++active[*key];
          most_active[*key] = std::max(most_active[*key], now_active);
        }
        std::this_thread::yield();  // widen the window for a second worker to take it
        {
          absl::MutexLock lock(&mu);
          --active[*key];
          ++processed[*key];
        }
        queue.Done(*key);
      }
    });
  }
  const std::vector<std::string> keys = {"ns/a", "ns/b", "ns/c"};
  for (int round = 0; round < 3000; ++round) queue.Add(keys[round % keys.size()]);
  queue.ShutDown();
  for (std::thread& worker : workers) worker.join();

  for (const std::string& key : keys) {
    EXPECT_EQ(most_active[key], 1) << key;
    EXPECT_GE(processed[key], 1) << key;
  }
}

TEST(RateLimiter, BackoffDoublesFrom5msAndStopsAt1000s) {
  FakeClock clock;
  RateLimiter limiter(clock);
  for (int failure = 0; failure < 30; ++failure) {
    const absl::Duration expected =
        std::min(absl::Milliseconds(int64_t{5} << failure), absl::Seconds(1000));
    EXPECT_EQ(limiter.When("ns/a"), expected) << "failure " << failure;
  }
  EXPECT_EQ(limiter.NumRequeues("ns/a"), 30);
}

TEST(RateLimiter, ForgetStartsTheBackoffAgain) {
  FakeClock clock;
  RateLimiter limiter(clock);
  limiter.When("ns/a");
  limiter.When("ns/a");
  EXPECT_EQ(limiter.When("ns/a"), absl::Milliseconds(20));
  limiter.Forget("ns/a");
  EXPECT_EQ(limiter.NumRequeues("ns/a"), 0);
  EXPECT_EQ(limiter.When("ns/a"), absl::Milliseconds(5));
}

TEST(RateLimiter, BackoffIsPerKey) {
  FakeClock clock;
  RateLimiter limiter(clock);
  limiter.When("ns/a");
  limiter.When("ns/a");
  EXPECT_EQ(limiter.When("ns/b"), absl::Milliseconds(5));
  EXPECT_EQ(limiter.NumRequeues("ns/a"), 2);
  EXPECT_EQ(limiter.NumRequeues("ns/b"), 1);
}

TEST(RateLimiter, OverallLimitOf10PerSecondAppliesAfterABurstOf100) {
  FakeClock clock;
  RateLimiter limiter(clock);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(limiter.When("ns/key-" + std::to_string(i)), absl::Milliseconds(5)) << i;
  }
  EXPECT_EQ(limiter.When("ns/key-100"), absl::Milliseconds(100));
  EXPECT_EQ(limiter.When("ns/key-101"), absl::Milliseconds(200));
  // A second refills ten tokens: two pay back the reservations above, eight are free.
  clock.Advance(absl::Seconds(1));
  for (int i = 102; i < 110; ++i) {
    EXPECT_EQ(limiter.When("ns/key-" + std::to_string(i)), absl::Milliseconds(5)) << i;
  }
  EXPECT_EQ(limiter.When("ns/key-110"), absl::Milliseconds(100));
}

TEST(WorkQueue, RateLimitedKeyArrivesAfterItsBackoff) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.AddRateLimited("ns/a");
  EXPECT_EQ(queue.NumRequeues("ns/a"), 1);
  EXPECT_EQ(queue.Len(), 0u);
  clock.Advance(absl::Milliseconds(4));
  EXPECT_EQ(queue.Len(), 0u);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(queue.Len(), 1u);
  queue.Forget("ns/a");
  EXPECT_EQ(queue.NumRequeues("ns/a"), 0);
}

TEST(WorkQueue, OverallRateLimitHoldsBackKeysBeyondTheBurst) {
  FakeClock clock;
  WorkQueue queue(clock);
  for (int i = 0; i <= 100; ++i) queue.AddRateLimited("ns/key-" + std::to_string(i));
  clock.Advance(absl::Milliseconds(5));
  EXPECT_EQ(queue.Len(), 100u);
  clock.Advance(absl::Milliseconds(94));
  EXPECT_EQ(queue.Len(), 100u);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(queue.Len(), 101u);
}

TEST(WorkQueue, AddAfterHandsOutTheKeyOnlyOnceTheClockPasses) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.AddAfter("ns/a", absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 0u);
  clock.Advance(absl::Milliseconds(999));
  EXPECT_EQ(queue.Len(), 0u);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(queue.Len(), 1u);
  EXPECT_EQ(queue.Get(), "ns/a");
}

TEST(WorkQueue, AddAfterKeepsTheEarliestDueTimeForAKey) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.AddAfter("ns/late-then-early", absl::Seconds(10));
  queue.AddAfter("ns/late-then-early", absl::Seconds(1));
  queue.AddAfter("ns/early-then-late", absl::Seconds(1));
  queue.AddAfter("ns/early-then-late", absl::Seconds(10));
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 2u);
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(queue.Len(), 2u) << "each key is delayed once";
}

TEST(WorkQueue, AddAfterWithoutDelayAddsAtOnce) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.AddAfter("ns/a", absl::ZeroDuration());
  queue.AddAfter("ns/b", -absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 2u);
}

TEST(WorkQueue, BlockedGetWakesWhenTheFakeClockPassesTheDelay) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.AddAfter("ns/a", absl::Hours(1));
  std::optional<std::string> got;
  absl::Notification returned;
  std::thread worker([&] {
    got = queue.Get();
    returned.Notify();
  });
  clock.Advance(absl::Hours(1));
  queue.ClockAdvanced();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(kDeadline));
  queue.ShutDown();  // releases the worker if the test failed
  worker.join();
  EXPECT_EQ(got, "ns/a");
}

TEST(WorkQueue, WithTheRealClockADelayedKeyArrivesOnItsOwn) {
  WorkQueue queue;
  const absl::Time start = absl::Now();
  queue.AddAfter("ns/a", absl::Milliseconds(20));
  EXPECT_EQ(queue.Get(), "ns/a");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

TEST(WorkQueue, AnEarlierDelayedKeyWakesAGetWaitingForALaterOne) {
  WorkQueue queue;
  queue.AddAfter("ns/late", absl::Hours(1));
  std::optional<std::string> got;
  absl::Notification returned;
  std::thread worker([&] {
    got = queue.Get();
    returned.Notify();
  });
  queue.AddAfter("ns/soon", absl::Milliseconds(10));
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(kDeadline));
  queue.ShutDown();
  worker.join();
  EXPECT_EQ(got, "ns/soon");
}

TEST(WorkQueue, ShutDownWakesABlockedGet) {
  FakeClock clock;
  WorkQueue queue(clock);
  std::optional<std::string> got = "not yet";
  absl::Notification returned;
  std::thread worker([&] {
    got = queue.Get();
    returned.Notify();
  });
  queue.ShutDown();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(kDeadline));
  worker.join();
  EXPECT_EQ(got, std::nullopt);
  EXPECT_TRUE(queue.ShuttingDown());
}

TEST(WorkQueue, AfterShutDownQueuedKeysAreStillHandedOutAndAddsAreIgnored) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  queue.AddAfter("ns/delayed", absl::Seconds(1));
  queue.ShutDown();
  queue.Add("ns/b");
  queue.AddRateLimited("ns/c");
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 1u);
  EXPECT_EQ(queue.Get(), "ns/a");
  EXPECT_EQ(queue.Get(), std::nullopt);
}

TEST(WorkQueue, ShutDownWithDrainWaitsForKeysInFlight) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  absl::Notification drained;
  std::thread stopper([&] {
    queue.ShutDownWithDrain();
    drained.Notify();
  });
  // Once shutting down, only Done can let the drain finish.
  const absl::Time deadline = absl::Now() + kDeadline;
  while (!queue.ShuttingDown() && absl::Now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(queue.ShuttingDown());
  EXPECT_FALSE(drained.HasBeenNotified());
  queue.Done("ns/a");
  EXPECT_TRUE(drained.WaitForNotificationWithTimeout(kDeadline));
  stopper.join();
}

TEST(WorkQueue, ShutDownWithDrainReturnsAtOnceWhenNothingIsInFlight) {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.ShutDownWithDrain();
  EXPECT_EQ(queue.Get(), std::nullopt);
}

TEST(WorkQueue, DepthGaugeFollowsTheKeysWaiting) {
  FakeClock clock;
  WorkQueue queue(clock);
  Gauge depth(Gauge::Config{});
  queue.Add("ns/a");
  queue.ReportDepthTo(&depth);
  EXPECT_EQ(depth.Value(), 1);
  queue.Add("ns/b");
  queue.AddAfter("ns/c", absl::Seconds(1));
  EXPECT_EQ(depth.Value(), 2);
  ASSERT_TRUE(queue.Get().has_value());
  EXPECT_EQ(depth.Value(), 1);
  clock.Advance(absl::Seconds(1));
  queue.ClockAdvanced();
  EXPECT_EQ(depth.Value(), 2);
}

}  // namespace
}  // namespace kmm::kube
