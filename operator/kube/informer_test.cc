// The informer's bookkeeping over a scripted client: what reaches handlers, the resource
// version it resumes from, and the relist after 410 Gone. The same behaviour against a real
// API server is in kube_integration_test.cc.
#include "operator/kube/informer.h"

#include <algorithm>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/kube/testing/fake_kube_client.h"

namespace kmm::kube {
namespace {

using ::testing::ElementsAre;
using testing::FakeKubeClient;

nlohmann::json Node(std::string name, std::string label = "x") {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", std::move(name)}, {"labels", {{"l", std::move(label)}}}}},
          {"status", {{"big", std::string(100, 'z')}}}};
}

WatchEvent Event(WatchEvent::Type type, nlohmann::json object, std::string version) {
  object["metadata"]["resourceVersion"] = std::move(version);
  return {type, std::move(object)};
}

// Records handler calls as "add NAME", "update NAME", "delete NAME".
class RecordingHandler : public ResourceEventHandler {
 public:
  void OnAdd(const ObjectPtr& object) override { Push("add", *object); }
  void OnUpdate(const ObjectPtr&, const ObjectPtr& object) override { Push("update", *object); }
  void OnDelete(const ObjectPtr& object) override { Push("delete", *object); }
  std::vector<std::string> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  bool WaitForCalls(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }

 private:
  void Push(std::string_view what, const nlohmann::json& object) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(fmt::format("{} {}", what, object["metadata"].value("name", "")));
  }
  absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

struct RunningInformer {
  RunningInformer(KubeClient& client, InformerOptions options) : informer(client, options) {
    informer.AddEventHandler(&handler);
  }
  void Start() {
    thread = std::thread([this] { informer.Run(cancel); });
  }
  ~RunningInformer() {
    cancel.Cancel();
    if (thread.joinable()) thread.join();
  }
  Informer informer;
  RecordingHandler handler;
  Cancellation cancel;
  std::thread thread;
};

InformerOptions NodeOptions() {
  InformerOptions options;
  options.resource = resources::kNodes;
  options.page_size = 2;
  options.initial_backoff = absl::Milliseconds(1);
  return options;
}

TEST(InformerTest, ListsEveryPageThenAppliesWatchEventsInOrder) {
  FakeKubeClient client;
  for (const char* name : {"a", "b", "c"}) client.Put(resources::kNodes, Node(name));
  client.AddWatch({{Event(WatchEvent::Type::kAdded, Node("d"), "200"),
                    Event(WatchEvent::Type::kModified, Node("a", "y"), "201"),
                    Event(WatchEvent::Type::kDeleted, Node("b"), "202")}});
  RunningInformer running(client, NodeOptions());
  running.Start();
  ASSERT_TRUE(running.handler.WaitForCalls(6));
  EXPECT_THAT(running.handler.calls(),
              ElementsAre("add a", "add b", "add c", "add d", "update a", "delete b"));
  EXPECT_TRUE(running.informer.HasSynced());
  EXPECT_EQ(running.informer.Size(), 3u);
  EXPECT_EQ((*running.informer.Get("a"))["metadata"]["labels"]["l"], "y");
  EXPECT_EQ(running.informer.Get("b"), nullptr);
  // The list came in pages of two.
  EXPECT_THAT(client.requests(), ::testing::Contains("list nodes "));
  EXPECT_GE(running.informer.stats().lists, 1u);
}

TEST(InformerTest, IsLiveWhileItsLoopRunsAndProgresses) {
  FakeKubeClient client;
  client.Put(resources::kNodes, Node("a"));
  auto running = std::make_unique<RunningInformer>(client, NodeOptions());
  EXPECT_THAT(running->informer.Liveness(absl::Now(), absl::Minutes(1)).message(),
              ::testing::HasSubstr("the nodes informer is not running"));
  running->Start();
  ASSERT_TRUE(running->informer.WaitForSync(running->cancel, absl::Seconds(10)));
  EXPECT_TRUE(running->informer.Liveness(absl::Now(), absl::Minutes(1)).ok());
  // A loop that made no progress for longer than a watch can last is stuck.
  EXPECT_THAT(running->informer.Liveness(absl::Now() + absl::Hours(1), absl::Minutes(11)).message(),
              ::testing::HasSubstr("made no progress for 1h"));
  Informer& informer = running->informer;
  running->cancel.Cancel();
  running->thread.join();
  EXPECT_FALSE(informer.Liveness(absl::Now(), absl::Minutes(1)).ok());
}

TEST(InformerTest, ResumesTheWatchFromTheLastVersionSeenIncludingBookmarks) {
  FakeKubeClient client;
  client.Put(resources::kNodes, Node("a"));
  client.AddWatch(
      {{Event(WatchEvent::Type::kModified, Node("a"), "300"),
        Event(WatchEvent::Type::kBookmark, {{"metadata", nlohmann::json::object()}}, "350")},
       absl::UnavailableError("connection reset")});
  RunningInformer running(client, NodeOptions());
  running.Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (client.watch_requests().size() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  std::vector<WatchOptions> watches = client.watch_requests();
  ASSERT_GE(watches.size(), 2u);
  EXPECT_EQ(watches[1].resource_version, "350");
  EXPECT_TRUE(watches[1].allow_bookmarks);
  EXPECT_GT(watches[1].timeout_seconds, 0);
  EXPECT_EQ(running.informer.stats().watch_errors, 1u);
  EXPECT_EQ(running.informer.stats().lists, 1u);  // an error resumes, it does not relist
}

TEST(InformerTest, RelistsAfterGoneAndReportsWhatChangedMeanwhile) {
  FakeKubeClient client;
  client.Put(resources::kNodes, Node("a"));
  client.Put(resources::kNodes, Node("b"));
  // The watch says our version is too old; meanwhile a changed, b went, c came.
  client.AddWatch(
      {{{WatchEvent::Type::kError, {{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}}}}});
  // Change the store after the first list, before the relist: do it from the handler. It is
  // declared before `running`, so it outlives the informer thread that calls it.
  FunctionEventHandler mutate;
  bool mutated = false;
  mutate.on_add = [&](const ObjectPtr& object) {
    if (mutated || (*object)["metadata"]["name"] != "b") return;
    mutated = true;
    client.Put(resources::kNodes, Node("a", "changed"));
    client.Delete(resources::kNodes, "", "b", {}).IgnoreError();
    client.Put(resources::kNodes, Node("c"));
  };
  RunningInformer running(client, NodeOptions());
  running.informer.AddEventHandler(&running.handler);  // (second registration: counts twice)
  running.informer.AddEventHandler(&mutate);
  running.Start();
  ASSERT_TRUE(running.handler.WaitForCalls(10));
  std::vector<std::string> calls = running.handler.calls();
  EXPECT_THAT(std::vector<std::string>(calls.begin() + 4, calls.end()),
              ::testing::UnorderedElementsAre("update a", "update a", "add c", "add c", "delete b",
                                              "delete b"));
  EXPECT_EQ(running.informer.stats().relists_after_gone, 1u);
  EXPECT_EQ(running.informer.Size(), 2u);
}

TEST(InformerTest, TransformTrimsWhatIsCached) {
  FakeKubeClient client;
  client.Put(resources::kNodes, Node("a"));
  InformerOptions options = NodeOptions();
  options.transform = [](nlohmann::json object) {
    object.erase("status");
    return object;
  };
  RunningInformer running(client, options);
  running.Start();
  ASSERT_TRUE(running.informer.WaitForSync(running.cancel, absl::Seconds(10)));
  EXPECT_FALSE(running.informer.Get("a")->contains("status"));
}

std::vector<std::string> IndexedNames(const Informer& informer, std::string_view value) {
  std::vector<std::string> names;
  for (const ObjectPtr& object : informer.ListIndexed(value)) {
    names.push_back((*object)["metadata"]["name"]);
  }
  std::sort(names.begin(), names.end());
  return names;
}

InformerOptions IndexedByLabel() {
  InformerOptions options = NodeOptions();
  options.index = [](const nlohmann::json& object) {
    return object["metadata"]["labels"].value("l", "");
  };
  return options;
}

TEST(InformerTest, IndexFollowsTheListAndWatchEvents) {
  FakeKubeClient client;
  client.Put(resources::kNodes, Node("a", "x"));
  client.Put(resources::kNodes, Node("b", "x"));
  client.Put(resources::kNodes, Node("c", ""));  // not indexed
  client.AddWatch({{Event(WatchEvent::Type::kModified, Node("a", "y"), "200"),
                    Event(WatchEvent::Type::kDeleted, Node("b", "x"), "201"),
                    Event(WatchEvent::Type::kAdded, Node("d", "y"), "202")}});
  RunningInformer running(client, IndexedByLabel());
  running.Start();
  ASSERT_TRUE(running.handler.WaitForCalls(6));  // 3 adds, update a, delete b, add d
  EXPECT_THAT(IndexedNames(running.informer, "y"), ElementsAre("a", "d"));
  EXPECT_THAT(IndexedNames(running.informer, "x"), ElementsAre());
  EXPECT_THAT(IndexedNames(running.informer, ""), ElementsAre());
}

TEST(InformerTest, IndexIsRebuiltByARelist) {
  FakeKubeClient client;
  client.Put(resources::kNodes, Node("a", "x"));
  client.Put(resources::kNodes, Node("b", "x"));
  // The watch moves a to y and adds d (events the store never saw), then says 410: the
  // relist brings back the store's view.
  client.AddWatch(
      {{Event(WatchEvent::Type::kModified, Node("a", "y"), "200"),
        Event(WatchEvent::Type::kAdded, Node("d", "y"), "201"),
        {WatchEvent::Type::kError, {{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}}}}});
  RunningInformer running(client, IndexedByLabel());
  running.Start();
  ASSERT_TRUE(running.handler.WaitForCalls(6));  // 2 adds, update a, add d, update a, delete d
  EXPECT_EQ(running.informer.stats().relists_after_gone, 1u);
  EXPECT_THAT(IndexedNames(running.informer, "x"), ElementsAre("a", "b"));
  EXPECT_THAT(IndexedNames(running.informer, "y"), ElementsAre());
}

TEST(InformerTest, RetriesAFailedListAndCancelsCleanly) {
  FakeKubeClient client;
  client.Put(resources::kNodes, Node("a"));
  client.FailNext(absl::UnavailableError("connection refused"));
  RunningInformer running(client, NodeOptions());
  running.Start();
  ASSERT_TRUE(running.informer.WaitForSync(running.cancel, absl::Seconds(10)));
  EXPECT_EQ(running.informer.Size(), 1u);
  running.cancel.Cancel();
  running.thread.join();  // returns although the (idle) watch never ends by itself
}

}  // namespace
}  // namespace kmm::kube
