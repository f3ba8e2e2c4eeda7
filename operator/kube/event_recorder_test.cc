#include "operator/kube/event_recorder.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/kube/testing/fake_kube_client.h"

namespace kmm::kube {
namespace {

using testing::FakeKubeClient;

const nlohmann::json kModule = {
    {"apiVersion", "kmm.sigs.x-k8s.io/v1beta1"},
    {"kind", "Module"},
    {"metadata", {{"name", "demo"}, {"namespace", "ns1"}, {"uid", "u-1"}}}};
const nlohmann::json kNode = {{"apiVersion", "v1"},
                              {"kind", "Node"},
                              {"metadata", {{"name", "node-1"}, {"uid", "u-2"}}}};

std::vector<nlohmann::json> Events(FakeKubeClient& client, std::string_view ns) {
  return ListAll(client, resources::kEvents, ns, {})->items;
}

TEST(EventRecorderTest, CreatesAnEventNamingTheObject) {
  FakeKubeClient client;
  FakeClock clock;
  EventRecorder recorder(client, "kmm-operator", "pod-1", clock);
  recorder.Record(kModule, EventType::kWarning, "NoKernelMapping", "kernel 6.1 on node-1");
  std::vector<nlohmann::json> events = Events(client, "ns1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["involvedObject"]["kind"], "Module");
  EXPECT_EQ(events[0]["involvedObject"]["name"], "demo");
  EXPECT_EQ(events[0]["involvedObject"]["uid"], "u-1");
  EXPECT_EQ(events[0]["type"], "Warning");
  EXPECT_EQ(events[0]["reason"], "NoKernelMapping");
  EXPECT_EQ(events[0]["count"], 1);
  EXPECT_EQ(events[0]["source"]["component"], "kmm-operator");
}

TEST(EventRecorderTest, ARepeatBumpsTheCountInsteadOfCreatingAnother) {
  FakeKubeClient client;
  FakeClock clock;
  EventRecorder recorder(client, "kmm-operator", "pod-1", clock);
  for (int i = 0; i < 5; ++i) {
    recorder.Record(kModule, EventType::kNormal, "Progressing", "2 of 3 nodes ready");
    clock.Advance(absl::Seconds(1));
  }
  std::vector<nlohmann::json> events = Events(client, "ns1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["count"], 5);
  EXPECT_NE(events[0]["firstTimestamp"], events[0]["lastTimestamp"]);
  EXPECT_EQ(recorder.created(), 1u);
  EXPECT_EQ(recorder.updated(), 4u);
}

TEST(EventRecorderTest, ADifferentMessageIsANewEvent) {
  FakeKubeClient client;
  FakeClock clock;
  EventRecorder recorder(client, "kmm-operator", "pod-1", clock);
  recorder.Record(kModule, EventType::kNormal, "Progressing", "1 of 3");
  clock.Advance(absl::Seconds(1));
  recorder.Record(kModule, EventType::kNormal, "Progressing", "2 of 3");
  EXPECT_EQ(Events(client, "ns1").size(), 2u);
}

TEST(EventRecorderTest, ClusterScopedObjectsGetEventsInDefault) {
  FakeKubeClient client;
  EventRecorder recorder(client, "kmm-operator", "pod-1");
  recorder.Record(kNode, EventType::kNormal, "ModuleLoaded", "ns1/demo loaded");
  std::vector<nlohmann::json> events = Events(client, "default");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0]["involvedObject"].contains("namespace"));
}

TEST(EventRecorderTest, AnExpiredEventIsCreatedAgain) {
  FakeKubeClient client;
  FakeClock clock;
  EventRecorder recorder(client, "kmm-operator", "pod-1", clock);
  recorder.Record(kModule, EventType::kNormal, "Ready", "all nodes");
  std::string name = Events(client, "ns1")[0]["metadata"]["name"];
  ASSERT_TRUE(client.Delete(resources::kEvents, "ns1", name, {}).ok());  // the API server's TTL
  clock.Advance(absl::Seconds(1));
  recorder.Record(kModule, EventType::kNormal, "Ready", "all nodes");
  std::vector<nlohmann::json> events = Events(client, "ns1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["count"], 1);
  EXPECT_EQ(recorder.created(), 2u);
}

TEST(EventRecorderTest, ForgetsTheOldestBeyondItsCapacity) {
  FakeKubeClient client;
  FakeClock clock;
  EventRecorder recorder(client, "kmm-operator", "pod-1", clock, /*remembered_events=*/2);
  for (const char* message : {"a", "b", "c"}) {
    recorder.Record(kModule, EventType::kNormal, "R", message);
    clock.Advance(absl::Seconds(1));
  }
  recorder.Record(kModule, EventType::kNormal, "R", "a");  // forgotten: a new Event
  EXPECT_EQ(Events(client, "ns1").size(), 4u);
  recorder.Record(kModule, EventType::kNormal, "R", "c");  // remembered: a count bump
  EXPECT_EQ(Events(client, "ns1").size(), 4u);
}

TEST(EventRecorderTest, FailuresAreNotFatal) {
  FakeKubeClient client;
  EventRecorder recorder(client, "kmm-operator", "pod-1");
  client.FailNext(ApiError(403, "Forbidden", "cannot create events"));
  recorder.Record(kModule, EventType::kNormal, "R", "m");
  EXPECT_EQ(recorder.created(), 0u);
}

}  // namespace
}  // namespace kmm::kube
