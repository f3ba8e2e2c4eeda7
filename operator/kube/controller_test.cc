#include "operator/kube/controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"

namespace kmm::kube {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(10);
constexpr char kKey[] = "ns/module";

// Polls `condition` until it holds or the deadline passes; for state the controller changes
// on its worker threads after the reconciler returns.
bool Eventually(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + kDeadline;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Answers each call with the next scripted result (the last one repeats) and counts calls.
class ScriptedReconciler final : public Reconciler {
 public:
  using Step = std::function<absl::StatusOr<Result>(const std::string& key)>;
  explicit ScriptedReconciler(std::vector<Step> steps) : steps_(std::move(steps)) {}

  absl::StatusOr<Result> Reconcile(const std::string& key) override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      step = steps_[std::min(calls_, steps_.size() - 1)];
      ++calls_;
    }
    return step(key);
  }

  // Waits until Reconcile has been called `count` times.
  bool WaitForCalls(size_t count) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kDeadline);
  }

  size_t calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  const std::vector<Step> steps_;
  mutable absl::Mutex mu_;
  size_t calls_ ABSL_GUARDED_BY(mu_) = 0;
};

ScriptedReconciler::Step Returns(const absl::StatusOr<Result>& result) {
  return [result](const std::string&) { return result; };
}

class ControllerTest : public ::testing::Test {
 protected:
  double Reconciles(std::string_view result) {
    return metrics_.reconcile_total.WithLabels({"modules", result}).Value();
  }
  double Errors() { return metrics_.reconcile_errors_total.WithLabels({"modules"}).Value(); }
  // Moves the clock and lets a worker waiting in Get see it.
  void Advance(absl::Duration duration) {
    clock_.Advance(duration);
    queue_.ClockAdvanced();
  }

  FakeClock clock_;
  WorkQueue queue_{clock_};
  Registry registry_;
  ControllerMetrics metrics_{registry_};
};

TEST(IsTerminalError, OnlyInvalidArgumentAndFailedPreconditionAreTerminal) {
  EXPECT_TRUE(IsTerminalError(absl::InvalidArgumentError("bad spec")));
  EXPECT_TRUE(IsTerminalError(absl::FailedPreconditionError("no kernel mapping")));
  EXPECT_FALSE(IsTerminalError(absl::UnavailableError("api server down")));
  EXPECT_FALSE(IsTerminalError(absl::NotFoundError("gone")));
  EXPECT_FALSE(IsTerminalError(absl::AbortedError("conflict")));
}

TEST_F(ControllerTest, SuccessForgetsTheKeysBackoffAndCountsASuccess) {
  queue_.AddRateLimited(kKey);  // an earlier failure
  Advance(absl::Milliseconds(5));
  ScriptedReconciler reconciler({Returns(Result{})});
  Controller controller("modules", queue_, reconciler, &metrics_, 2);
  controller.Start();

  ASSERT_TRUE(Eventually([&] { return Reconciles("success") == 1; }));
  EXPECT_EQ(queue_.NumRequeues(kKey), 0);
  EXPECT_EQ(queue_.Len(), 0u);
  controller.Stop();
  EXPECT_EQ(reconciler.calls(), 1u);
  EXPECT_EQ(Reconciles("error"), 0);
  EXPECT_EQ(Errors(), 0);
}

TEST_F(ControllerTest, ErrorIsCountedAndRetriedAfterTheBackoff) {
  ScriptedReconciler reconciler(
      {Returns(absl::UnavailableError("api server down")), Returns(Result{})});
  Controller controller("modules", queue_, reconciler, &metrics_);
  controller.Start();
  queue_.Add(kKey);

  ASSERT_TRUE(Eventually([&] { return Reconciles("error") == 1; }));
  EXPECT_EQ(Errors(), 1);
  EXPECT_EQ(queue_.NumRequeues(kKey), 1);
  Advance(absl::Milliseconds(4));
  EXPECT_EQ(reconciler.calls(), 1u) << "retried before its 5 ms backoff";
  Advance(absl::Milliseconds(1));
  ASSERT_TRUE(reconciler.WaitForCalls(2));
  ASSERT_TRUE(Eventually([&] { return Reconciles("success") == 1; }));
  EXPECT_EQ(queue_.NumRequeues(kKey), 0);
}

TEST_F(ControllerTest, TerminalErrorIsReportedAndNotRetried) {
  for (const absl::Status& terminal : {absl::InvalidArgumentError("spec.selector is empty"),
                                       absl::FailedPreconditionError("no kernel mapping")}) {
    ScriptedReconciler reconciler({Returns(terminal)});
    FakeClock clock;
    WorkQueue queue(clock);
    Registry registry;
    ControllerMetrics metrics(registry);
    Controller controller("modules", queue, reconciler, &metrics);
    controller.Start();
    queue.Add(kKey);

    ASSERT_TRUE(Eventually(
        [&] { return metrics.reconcile_errors_total.WithLabels({"modules"}).Value() == 1; }));
    EXPECT_EQ(queue.NumRequeues(kKey), 0) << terminal;
    clock.Advance(absl::Seconds(2000));
    EXPECT_EQ(queue.Len(), 0u) << terminal;
    controller.Stop();
    EXPECT_EQ(reconciler.calls(), 1u) << terminal;
  }
}

TEST_F(ControllerTest, RequeueComesBackAfterTheRateLimitedBackoff) {
  Result requeue;
  requeue.requeue = true;
  ScriptedReconciler reconciler({Returns(requeue), Returns(Result{})});
  Controller controller("modules", queue_, reconciler, &metrics_);
  controller.Start();
  queue_.Add(kKey);

  ASSERT_TRUE(Eventually([&] { return Reconciles("requeue") == 1; }));
  EXPECT_EQ(queue_.NumRequeues(kKey), 1);
  EXPECT_EQ(Errors(), 0);
  Advance(absl::Milliseconds(5));
  ASSERT_TRUE(reconciler.WaitForCalls(2));
  ASSERT_TRUE(Eventually([&] { return Reconciles("success") == 1; }));
}

TEST_F(ControllerTest, RequeueAfterResetsTheBackoffAndWaitsTheGivenTime) {
  queue_.AddRateLimited(kKey);  // an earlier failure
  Advance(absl::Milliseconds(5));
  Result later;
  later.requeue = true;  // requeue_after wins
  later.requeue_after = absl::Seconds(30);
  ScriptedReconciler reconciler({Returns(later), Returns(Result{})});
  Controller controller("modules", queue_, reconciler, &metrics_);
  controller.Start();

  ASSERT_TRUE(Eventually([&] { return Reconciles("requeue_after") == 1; }));
  EXPECT_EQ(queue_.NumRequeues(kKey), 0);
  Advance(absl::Seconds(30) - absl::Milliseconds(1));
  EXPECT_EQ(queue_.Len(), 0u);
  EXPECT_EQ(reconciler.calls(), 1u);
  Advance(absl::Milliseconds(1));
  ASSERT_TRUE(reconciler.WaitForCalls(2));
}

TEST_F(ControllerTest, ExceptionFromTheReconcilerIsARetriedError) {
  ScriptedReconciler reconciler(
      {[](const std::string&) -> absl::StatusOr<Result> { throw std::runtime_error("boom"); },
       Returns(Result{})});
  Controller controller("modules", queue_, reconciler, &metrics_);
  controller.Start();
  queue_.Add(kKey);

  ASSERT_TRUE(Eventually([&] { return Errors() == 1; }));
  EXPECT_EQ(queue_.NumRequeues(kKey), 1);
  Advance(absl::Milliseconds(5));
  ASSERT_TRUE(reconciler.WaitForCalls(2));
}

TEST_F(ControllerTest, ObservesReconcileDurationAndQueueDepth) {
  ScriptedReconciler reconciler({[this](const std::string&) -> absl::StatusOr<Result> {
    clock_.Advance(absl::Milliseconds(300));
    return Result{};
  }});
  queue_.Add("ns/a");
  queue_.Add("ns/b");
  Controller controller("modules", queue_, reconciler, &metrics_);
  EXPECT_EQ(metrics_.workqueue_depth.WithLabels({"modules"}).Value(), 2);
  controller.Start();

  ASSERT_TRUE(Eventually([&] { return Reconciles("success") == 2; }));
  EXPECT_EQ(metrics_.workqueue_depth.WithLabels({"modules"}).Value(), 0);
  const Histogram::Snapshot duration =
      metrics_.reconcile_duration_seconds.WithLabels({"modules"}).Read();
  EXPECT_DOUBLE_EQ(duration.sum, 0.6);
  EXPECT_EQ(duration.cumulative_counts.back(), 2u);
}

TEST_F(ControllerTest, StopWaitsForTheReconcileInFlightThenJoins) {
  absl::Notification entered;
  absl::Notification release;
  std::atomic<bool> finished{false};
  ScriptedReconciler reconciler({[&](const std::string&) -> absl::StatusOr<Result> {
    entered.Notify();
    release.WaitForNotification();
    finished = true;
    return Result{};
  }});
  Controller controller("modules", queue_, reconciler, &metrics_, 3);
  controller.Start();
  queue_.Add(kKey);
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kDeadline));

  absl::Notification stopped;
  std::thread stopper([&] {
    controller.Stop();
    stopped.Notify();
  });
  EXPECT_FALSE(stopped.HasBeenNotified());
  release.Notify();
  EXPECT_TRUE(stopped.WaitForNotificationWithTimeout(kDeadline));
  stopper.join();
  EXPECT_TRUE(finished);
  EXPECT_TRUE(queue_.ShuttingDown());

  queue_.Add("ns/after-stop");
  controller.Stop();  // idempotent
  EXPECT_EQ(reconciler.calls(), 1u);
}

TEST_F(ControllerTest, AReconcileThatNeverReturnsMakesTheWorkLoopNotLive) {
  absl::Notification entered;
  absl::Notification release;
  ScriptedReconciler reconciler({[&](const std::string&) -> absl::StatusOr<Result> {
    entered.Notify();
    release.WaitForNotification();
    return Result{};
  }});
  Controller controller("modules", queue_, reconciler, &metrics_, 2);
  EXPECT_TRUE(controller.Liveness(absl::Minutes(10)).ok());  // not started: a standby
  controller.Start();
  queue_.Add(kKey);
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kDeadline));
  EXPECT_TRUE(controller.Liveness(absl::Minutes(10)).ok());
  clock_.Advance(absl::Minutes(11));
  const absl::Status stuck = controller.Liveness(absl::Minutes(10));
  EXPECT_EQ(stuck.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(stuck.message().find("reconciling ns/module for 11m"), std::string_view::npos)
      << stuck.message();
  release.Notify();
  EXPECT_TRUE(Eventually([&] { return controller.Liveness(absl::Minutes(10)).ok(); }));
  controller.Stop();
}

TEST_F(ControllerTest, NeverReconcilesOneKeyInTwoWorkersAtOnce) {
  absl::Mutex mu;
  std::map<std::string, int> active;
  int most_active = 0;
  ScriptedReconciler reconciler({[&](const std::string& key) -> absl::StatusOr<Result> {
    {
      absl::MutexLock lock(&mu);
      most_active = std::max(most_active, ++active[key]);
    }
    std::this_thread::yield();
    absl::MutexLock lock(&mu);
    --active[key];
    return Result{};
  }});
  WorkQueue queue;  // the real clock: nothing here is delayed
  Controller controller("modules", queue, reconciler, nullptr, 4);
  controller.Start();
  for (int round = 0; round < 3000; ++round) queue.Add(round % 2 == 0 ? "ns/a" : "ns/b");
  ASSERT_TRUE(reconciler.WaitForCalls(2));
  controller.Stop();

  absl::MutexLock lock(&mu);
  EXPECT_EQ(most_active, 1);
}

}  // namespace
}  // namespace kmm::kube
