#include "operator/kube/leader_election.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/kube/testing/fake_kube_client.h"

namespace kmm::kube {
namespace {

using testing::FakeKubeClient;

LeaderElectionConfig Config(std::string identity) {
  return {"kmm-system",      "kmm-operator",    std::move(identity),
          absl::Seconds(15), absl::Seconds(10), absl::Seconds(2)};
}

enum AttemptResult { kLeads, kWaits, kFailed };
AttemptResult Attempt(LeaderElector& elector) {
  absl::StatusOr<bool> result = elector.TryAcquireOrRenew();
  if (!result.ok()) return kFailed;
  return *result ? kLeads : kWaits;
}

nlohmann::json Lease(FakeKubeClient& client) {
  return *client.Get(resources::kLeases, "kmm-system", "kmm-operator");
}

TEST(LeaderElectorTest, FirstCandidateCreatesTheLeaseAndLeads) {
  FakeKubeClient client;
  FakeClock clock;
  LeaderElector a(client, Config("a"), clock);
  EXPECT_EQ(Attempt(a), kLeads);
  EXPECT_TRUE(a.IsLeader());
  nlohmann::json lease = Lease(client);
  EXPECT_EQ(lease["spec"]["holderIdentity"], "a");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 15);
  EXPECT_EQ(lease["spec"]["renewTime"], FormatMicroTime(clock.Now()));
  EXPECT_EQ(lease["spec"]["acquireTime"], FormatMicroTime(clock.Now()));
}

TEST(LeaderElectorTest, OthersWaitWhileTheHolderRenews) {
  FakeKubeClient client;
  FakeClock clock;
  LeaderElector a(client, Config("a"), clock);
  LeaderElector b(client, Config("b"), clock);
  ASSERT_EQ(Attempt(a), kLeads);
  for (int i = 0; i < 20; ++i) {
    clock.Advance(absl::Seconds(2));
    ASSERT_EQ(Attempt(a), kLeads);
    ASSERT_EQ(Attempt(b), kWaits);
  }
  EXPECT_FALSE(b.IsLeader());
  EXPECT_EQ(b.ObservedHolder(), "a");
}

TEST(LeaderElectorTest, TakesOverOnlyAfterTheLeaseDurationWithoutRenewal) {
  FakeKubeClient client;
  FakeClock clock;
  LeaderElector a(client, Config("a"), clock);
  LeaderElector b(client, Config("b"), clock);
  ASSERT_EQ(Attempt(a), kLeads);
  ASSERT_EQ(Attempt(b), kWaits);  // b starts timing now
  clock.Advance(absl::Seconds(14));
  EXPECT_EQ(Attempt(b), kWaits);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(Attempt(b), kLeads);
  nlohmann::json lease = Lease(client);
  EXPECT_EQ(lease["spec"]["holderIdentity"], "b");
  EXPECT_EQ(lease["spec"]["leaseTransitions"], 1);
  // The old leader notices on its next renewal.
  EXPECT_EQ(Attempt(a), kWaits);
  EXPECT_FALSE(a.IsLeader());
}

TEST(LeaderElectorTest, MeasuresExpiryOnItsOwnClockNotTheRenewTime) {
  FakeKubeClient client;
  FakeClock clock;
  // A lease renewed "long ago" by another node's skewed clock is not expired for us until we
  // have watched it stay unchanged for the lease duration.
  client.Put(resources::kLeases,
             {{"metadata", {{"name", "kmm-operator"}, {"namespace", "kmm-system"}}},
              {"spec",
               {{"holderIdentity", "x"},
                {"leaseDurationSeconds", 15},
                {"renewTime", "2000-01-01T00:00:00.000000Z"}}}});
  LeaderElector b(client, Config("b"), clock);
  EXPECT_EQ(Attempt(b), kWaits);
  clock.Advance(absl::Seconds(15));
  EXPECT_EQ(Attempt(b), kLeads);
}

TEST(LeaderElectorTest, RenewalKeepsAcquireTime) {
  FakeKubeClient client;
  FakeClock clock;
  LeaderElector a(client, Config("a"), clock);
  const std::string acquired = FormatMicroTime(clock.Now());
  ASSERT_EQ(Attempt(a), kLeads);
  clock.Advance(absl::Seconds(2));
  ASSERT_EQ(Attempt(a), kLeads);
  EXPECT_EQ(Lease(client)["spec"]["acquireTime"], acquired);
  EXPECT_EQ(Lease(client)["spec"]["renewTime"], FormatMicroTime(clock.Now()));
}

TEST(LeaderElectorTest, LosingAnUpdateRaceIsNotLeading) {
  FakeKubeClient client;
  FakeClock clock;
  LeaderElector a(client, Config("a"), clock);
  ASSERT_EQ(Attempt(a), kLeads);
  a.Release().IgnoreError();
  LeaderElector b(client, Config("b"), clock);
  // b reads the free Lease, but someone else's write lands first.
  client.FailNext(absl::OkStatus());  // the Get goes through
  client.FailNext(ApiError(409, "Conflict", "the object has been modified"));
  EXPECT_EQ(Attempt(b), kWaits);
  EXPECT_FALSE(b.IsLeader());
}

TEST(LeaderElectorTest, ReleaseLetsASuccessorTakeOverAtOnce) {
  FakeKubeClient client;
  FakeClock clock;
  LeaderElector a(client, Config("a"), clock);
  LeaderElector b(client, Config("b"), clock);
  ASSERT_EQ(Attempt(a), kLeads);
  ASSERT_EQ(Attempt(b), kWaits);
  ASSERT_TRUE(a.Release().ok());
  EXPECT_FALSE(a.IsLeader());
  EXPECT_EQ(Lease(client)["spec"]["holderIdentity"], "");
  EXPECT_EQ(Attempt(b), kLeads);
}

TEST(LeaderElectorTest, ApiErrorsAreFailedAttempts) {
  FakeKubeClient client;
  FakeClock clock;
  LeaderElector a(client, Config("a"), clock);
  client.FailNext(absl::UnavailableError("connection refused"));
  absl::StatusOr<bool> attempt = a.TryAcquireOrRenew();
  ASSERT_FALSE(attempt.ok());
  EXPECT_THAT(std::string(attempt.status().message()), ::testing::HasSubstr("Lease"));
  EXPECT_FALSE(a.IsLeader());
}

TEST(LeaderElectorTest, ValidatesDurations) {
  LeaderElectionConfig config = Config("a");
  EXPECT_TRUE(ValidateLeaderElectionConfig(config).ok());
  config.renew_deadline = config.lease_duration;
  EXPECT_FALSE(ValidateLeaderElectionConfig(config).ok());
  config = Config("");
  EXPECT_FALSE(ValidateLeaderElectionConfig(config).ok());
}

// LeaderElector::Run in a thread, counting the callbacks; cancelled and joined on destruction.
class RunningElector {
 public:
  RunningElector(FakeKubeClient& client, const LeaderElectionConfig& config)
      : elector(client, config), runner([this] {
          elector.Run(
              cancel, [this] { ++started; }, [this] { ++stopped; });
        }) {}
  ~RunningElector() {
    cancel.Cancel();
    if (runner.joinable()) runner.join();
  }
  bool WaitUntilLeading() {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (started == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    return started == 1;
  }

  LeaderElector elector;
  Cancellation cancel;
  std::atomic<int> started{0}, stopped{0};
  std::thread runner;
};

TEST(LeaderElectorTest, RunStopsLeadingWhenAnotherCandidateTakesTheLease) {
  FakeKubeClient client;
  LeaderElectionConfig config = Config("a");
  config.lease_duration = absl::Milliseconds(400);
  config.renew_deadline = absl::Milliseconds(300);
  config.retry_period = absl::Milliseconds(20);
  RunningElector a(client, config);
  ASSERT_TRUE(a.WaitUntilLeading());
  // Someone overwrites the Lease (e.g. an administrator, or a split brain).
  nlohmann::json lease = Lease(client);
  lease["spec"]["holderIdentity"] = "intruder";
  client.Put(resources::kLeases, lease);
  a.runner.join();  // Run returns by itself once it notices
  EXPECT_EQ(a.stopped, 1);
  EXPECT_FALSE(a.elector.IsLeader());
}

TEST(LeaderElectorTest, RunReleasesTheLeaseOnCancel) {
  FakeKubeClient client;
  LeaderElectionConfig config = Config("a");
  config.retry_period = absl::Milliseconds(20);
  RunningElector a(client, config);
  ASSERT_TRUE(a.WaitUntilLeading());
  a.cancel.Cancel();
  a.runner.join();
  EXPECT_EQ(a.stopped, 1);
  EXPECT_EQ(Lease(client)["spec"]["holderIdentity"], "");
}

}  // namespace
}  // namespace kmm::kube
