// The Kubernetes client against a real kube-apiserver and etcd (the local test cluster,
// docs/design.md §8): CRUD on core objects and a CRD, server-side apply conflicts, the status
// subresource, pagination, a watch that survives a forced 410 Gone, and two processes
// contending for one Lease. Needs KMM_TEST_CLUSTER_DIR (set by ctest's cluster fixture).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/kube/api_error.h"
#include "operator/kube/curl_kube_client.h"
#include "operator/kube/informer.h"
#include "operator/kube/rest_config.h"

extern char** environ;

namespace kmm::kube {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string ClusterDir() {
  const char* dir = std::getenv("KMM_TEST_CLUSTER_DIR");
  return dir != nullptr ? dir : "/tmp/kmm-test-cluster";
}
std::string KubeconfigPath() { return ClusterDir() + "/admin.kubeconfig"; }

// Waits for `condition` with a deadline (never a fixed sleep).
template <typename Condition>
bool WaitUntil(Condition condition, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// Runs test/cluster/kmm-test-cluster with `command` (restart-apiserver, compact-etcd).
int ClusterCommand(const std::string& command) {
  return std::system(
      fmt::format("{}/test/cluster/kmm-test-cluster {}", KMM_SOURCE_DIR, command).c_str());
}

json ConfigMap(const std::string& name, json data = json::object(), json labels = json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"labels", std::move(labels)}}},
          {"data", std::move(data)}};
}

const Resource kWidgets{"test.kmm.sigs.x-k8s.io", "v1", "widgets", true, "Widget"};

class KubeIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<RestConfig> config = LoadKubeconfig(KubeconfigPath());
    ASSERT_TRUE(config.ok()) << config.status() << " (is the test cluster up?)";
    auto client = CurlKubeClient::Create(*config, {});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client).release();
  }

  void SetUp() override {
    ASSERT_NE(client_, nullptr);
    std::mt19937 random(std::random_device{}());
    ns_ = fmt::format("kmm-it-{:08x}", random());
    ASSERT_TRUE(
        client_
            ->Create(resources::kNamespaces, "",
                     {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}})
            .ok());
  }
  void TearDown() override {
    if (client_ != nullptr) client_->Delete(resources::kNamespaces, "", ns_, {}).IgnoreError();
  }

  KubeClient& client() { return *client_; }

  static CurlKubeClient* client_;
  std::string ns_;
};
CurlKubeClient* KubeIntegrationTest::client_ = nullptr;

TEST_F(KubeIntegrationTest, CreatesGetsUpdatesPatchesAndDeletesCoreObjects) {
  absl::StatusOr<json> created =
      client().Create(resources::kConfigMaps, ns_, ConfigMap("settings", {{"a", "1"}}));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());

  absl::StatusOr<json> again = client().Create(resources::kConfigMaps, ns_, ConfigMap("settings"));
  EXPECT_TRUE(IsApiAlreadyExists(again.status())) << again.status();

  absl::StatusOr<json> got = client().Get(resources::kConfigMaps, ns_, "settings");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["data"]["a"], "1");

  json changed = *got;
  changed["data"]["a"] = "2";
  absl::StatusOr<json> updated = client().Update(resources::kConfigMaps, ns_, changed);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ((*updated)["data"]["a"], "2");
  // The same update again carries a stale resourceVersion.
  absl::StatusOr<json> stale = client().Update(resources::kConfigMaps, ns_, changed);
  EXPECT_TRUE(IsApiConflict(stale.status())) << stale.status();

  absl::StatusOr<json> patched = client().MergePatch(resources::kConfigMaps, ns_, "settings",
                                                     {{"data", {{"b", "3"}, {"a", nullptr}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["data"], json({{"b", "3"}}));

  // A delete whose precondition does not hold is refused.
  DeleteOptions wrong_uid;
  wrong_uid.precondition_uid = "00000000-0000-0000-0000-000000000000";
  EXPECT_TRUE(IsApiConflict(client().Delete(resources::kConfigMaps, ns_, "settings", wrong_uid)));
  DeleteOptions right;
  right.precondition_uid = (*created)["metadata"]["uid"].get<std::string>();
  right.propagation_policy = "Background";
  ASSERT_TRUE(client().Delete(resources::kConfigMaps, ns_, "settings", right).ok());
  absl::StatusOr<json> gone = client().Get(resources::kConfigMaps, ns_, "settings");
  EXPECT_TRUE(IsApiNotFound(gone.status())) << gone.status();
  EXPECT_THAT(std::string(gone.status().message()), HasSubstr("\"settings\" not found"));

  absl::StatusOr<json> invalid =
      client().Create(resources::kConfigMaps, ns_, ConfigMap("Not_Valid"));
  EXPECT_TRUE(IsApiInvalid(invalid.status())) << invalid.status();
}

TEST_F(KubeIntegrationTest, ClusterScopedObjectsAndLabelAndFieldSelectors) {
  ListOptions by_name;
  by_name.field_selector = "metadata.name=" + ns_;
  absl::StatusOr<ObjectList> namespaces = client().List(resources::kNamespaces, "", by_name);
  ASSERT_TRUE(namespaces.ok()) << namespaces.status();
  ASSERT_EQ(namespaces->items.size(), 1u);
  EXPECT_EQ(namespaces->items[0]["kind"], "Namespace");

  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(
        client()
            .Create(resources::kConfigMaps, ns_,
                    ConfigMap(fmt::format("cm-{}", i), {}, {{"parity", i % 2 ? "odd" : "even"}}))
            .ok());
  }
  ListOptions odd_only;
  odd_only.label_selector = "parity=odd";
  absl::StatusOr<ObjectList> odd = client().List(resources::kConfigMaps, ns_, odd_only);
  ASSERT_TRUE(odd.ok()) << odd.status();
  EXPECT_EQ(odd->items.size(), 3u);
  ListOptions malformed;
  malformed.label_selector = "parity in (odd";
  absl::StatusOr<ObjectList> bad = client().List(resources::kConfigMaps, ns_, malformed);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
}

TEST_F(KubeIntegrationTest, PagesThroughTwelveHundredObjects) {
  constexpr int kCount = 1200;
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = w; i < kCount; i += 4) {
        if (!client()
                 .Create(resources::kConfigMaps, ns_, ConfigMap(fmt::format("item-{:04}", i)))
                 .ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  ASSERT_EQ(failures, 0);

  ListOptions options;
  options.limit = 500;
  absl::StatusOr<ObjectList> first = client().List(resources::kConfigMaps, ns_, options);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->items.size(), 500u);
  EXPECT_FALSE(first->continue_token.empty());

  absl::StatusOr<ObjectList> all = ListAll(client(), resources::kConfigMaps, ns_, options);
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<std::string> names;
  for (const json& item : all->items) {
    std::string name = item["metadata"]["name"];
    if (name.rfind("item-", 0) == 0) names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kCount));  // every one, none twice
  EXPECT_FALSE(all->resource_version.empty());
}

class CustomResourceTest : public KubeIntegrationTest {
 protected:
  static void SetUpTestSuite() {
    KubeIntegrationTest::SetUpTestSuite();
    json crd = {{"apiVersion", "apiextensions.k8s.io/v1"},
                {"kind", "CustomResourceDefinition"},
                {"metadata", {{"name", "widgets.test.kmm.sigs.x-k8s.io"}}},
                {"spec",
                 {{"group", "test.kmm.sigs.x-k8s.io"},
                  {"scope", "Namespaced"},
                  {"names",
                   {{"plural", "widgets"},
                    {"singular", "widget"},
                    {"kind", "Widget"},
                    {"listKind", "WidgetList"}}},
                  {"versions",
                   {{{"name", "v1"},
                     {"served", true},
                     {"storage", true},
                     {"subresources", {{"status", json::object()}}},
                     {"schema",
                      {{"openAPIV3Schema",
                        {{"type", "object"},
                         {"properties",
                          {{"spec",
                            {{"type", "object"},
                             {"properties", {{"size", {{"type", "integer"}, {"minimum", 1}}}}}}},
                           {"status",
                            {{"type", "object"},
                             {"properties", {{"ready", {{"type", "integer"}}}}}}}}}}}}}}}}}}};
    absl::StatusOr<json> created = client_->Create(resources::kCustomResourceDefinitions, "", crd);
    ASSERT_TRUE(created.ok() || IsApiAlreadyExists(created.status())) << created.status();
    ASSERT_TRUE(WaitUntil([] {
      absl::StatusOr<json> current =
          client_->Get(resources::kCustomResourceDefinitions, "", "widgets.test.kmm.sigs.x-k8s.io");
      if (!current.ok()) return false;
      for (const json& condition : (*current)["status"].value("conditions", json::array())) {
        if (condition["type"] == "Established" && condition["status"] == "True") return true;
      }
      return false;
    })) << "the Widget CRD never became Established";
  }
};

json Widget(const std::string& name, int size) {
  return {{"apiVersion", "test.kmm.sigs.x-k8s.io/v1"},
          {"kind", "Widget"},
          {"metadata", {{"name", name}}},
          {"spec", {{"size", size}}}};
}

TEST_F(CustomResourceTest, CrudAndTheStatusSubresource) {
  absl::StatusOr<json> created = client().Create(kWidgets, ns_, Widget("w1", 3));
  ASSERT_TRUE(created.ok()) << created.status();

  // Status goes through /status only; the main resource ignores it, and vice versa.
  json with_status = *created;
  with_status["status"]["ready"] = 2;
  with_status["spec"]["size"] = 9;
  absl::StatusOr<json> status_written = client().Update(kWidgets, ns_, with_status, "status");
  ASSERT_TRUE(status_written.ok()) << status_written.status();
  EXPECT_EQ((*status_written)["status"]["ready"], 2);
  EXPECT_EQ((*status_written)["spec"]["size"], 3);

  json spec_change = *status_written;
  spec_change["spec"]["size"] = 5;
  spec_change["status"]["ready"] = 0;
  absl::StatusOr<json> spec_written = client().Update(kWidgets, ns_, spec_change);
  ASSERT_TRUE(spec_written.ok()) << spec_written.status();
  EXPECT_EQ((*spec_written)["spec"]["size"], 5);
  EXPECT_EQ((*spec_written)["status"]["ready"], 2);

  absl::StatusOr<json> patched =
      client().MergePatch(kWidgets, ns_, "w1", {{"status", {{"ready", 5}}}}, "status");
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["status"]["ready"], 5);

  // The schema is enforced: a 422 naming the field.
  absl::StatusOr<json> invalid = client().Create(kWidgets, ns_, Widget("w2", 0));
  EXPECT_TRUE(IsApiInvalid(invalid.status())) << invalid.status();
  EXPECT_THAT(std::string(invalid.status().message()), HasSubstr("spec.size"));

  absl::StatusOr<ObjectList> list = client().List(kWidgets, ns_, {});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0]["kind"], "Widget");
  EXPECT_TRUE(client().Delete(kWidgets, ns_, "w1", {}).ok());
}

TEST_F(CustomResourceTest, ServerSideApplyDetectsConflictsBetweenManagers) {
  ApplyOptions alice{"alice", false}, bob{"bob", false}, bob_forced{"bob", true};
  absl::StatusOr<json> applied = client().Apply(kWidgets, ns_, Widget("shared", 2), alice);
  ASSERT_TRUE(applied.ok()) << applied.status();
  // Re-applying the same intent is a no-op, not a conflict.
  EXPECT_TRUE(client().Apply(kWidgets, ns_, Widget("shared", 2), alice).ok());

  absl::StatusOr<json> conflict = client().Apply(kWidgets, ns_, Widget("shared", 4), bob);
  EXPECT_TRUE(IsApiConflict(conflict.status())) << conflict.status();
  EXPECT_THAT(std::string(conflict.status().message()), HasSubstr("alice"));

  absl::StatusOr<json> forced = client().Apply(kWidgets, ns_, Widget("shared", 4), bob_forced);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ((*forced)["spec"]["size"], 4);
  std::set<std::string> managers;
  for (const json& entry : (*forced)["metadata"]["managedFields"]) {
    managers.insert(entry["manager"].get<std::string>());
  }
  EXPECT_TRUE(managers.contains("bob"));

  EXPECT_EQ(client().Apply(kWidgets, ns_, Widget("shared", 4), {"", false}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Records what an informer's handlers saw.
class Recorder : public ResourceEventHandler {
 public:
  void OnAdd(const ObjectPtr& object) override { Push("add", *object); }
  void OnUpdate(const ObjectPtr&, const ObjectPtr& object) override { Push("update", *object); }
  void OnDelete(const ObjectPtr& object) override { Push("delete", *object); }
  bool Saw(const std::string& what) {
    absl::MutexLock lock(&mu_);
    return seen_.contains(what);
  }

 private:
  void Push(const char* what, const json& object) {
    absl::MutexLock lock(&mu_);
    seen_.insert(fmt::format("{} {}", what, object["metadata"].value("name", "")));
  }
  absl::Mutex mu_;
  std::set<std::string> seen_ ABSL_GUARDED_BY(mu_);
};

TEST_F(KubeIntegrationTest, InformerSurvivesAForced410WithoutLosingAnEvent) {
  ASSERT_TRUE(client().Create(resources::kConfigMaps, ns_, ConfigMap("before")).ok());
  InformerOptions options;
  options.resource = resources::kConfigMaps;
  options.ns = ns_;
  options.initial_backoff = absl::Milliseconds(200);
  options.max_backoff = absl::Seconds(1);
  options.transform = [](json object) {
    object["metadata"].erase("managedFields");
    return object;
  };
  Informer informer(client(), options);
  Recorder recorder;
  informer.AddEventHandler(&recorder);
  Cancellation cancel;
  std::thread runner([&] { informer.Run(cancel); });
  ASSERT_TRUE(informer.WaitForSync(cancel, absl::Seconds(30)));
  EXPECT_TRUE(recorder.Saw("add before"));

  // A live event through the watch.
  ASSERT_TRUE(client().Create(resources::kConfigMaps, ns_, ConfigMap("live")).ok());
  ASSERT_TRUE(WaitUntil([&] { return recorder.Saw("add live"); }));
  const uint64_t watches_before = informer.stats().watches;

  // Move etcd's revision past ours elsewhere, compact it, and restart the API server: its
  // new watch cache starts after our resourceVersion, so resuming gets 410 Gone.
  ASSERT_TRUE(client()
                  .Create(resources::kConfigMaps, "default", ConfigMap(fmt::format("bump-{}", ns_)))
                  .ok());
  ASSERT_EQ(ClusterCommand("compact-etcd"), 0);
  ASSERT_EQ(ClusterCommand("restart-apiserver"), 0);
  // Changes made right away, racing the informer's reconnect.
  ASSERT_TRUE(client().Create(resources::kConfigMaps, ns_, ConfigMap("after")).ok());
  ASSERT_TRUE(client().Delete(resources::kConfigMaps, ns_, "before", {}).ok());
  ASSERT_TRUE(
      client().MergePatch(resources::kConfigMaps, ns_, "live", {{"data", {{"x", "1"}}}}).ok());

  EXPECT_TRUE(WaitUntil(
      [&] {
        return recorder.Saw("add after") && recorder.Saw("delete before") &&
               recorder.Saw("update live");
      },
      absl::Seconds(60)));
  EXPECT_GE(informer.stats().relists_after_gone, 1u)
      << "the API server restart did not force a 410";
  EXPECT_GT(informer.stats().watches, watches_before);
  EXPECT_EQ(informer.Get(ns_ + "/before"), nullptr);
  ASSERT_NE(informer.Get(ns_ + "/live"), nullptr);
  EXPECT_EQ((*informer.Get(ns_ + "/live"))["data"]["x"], "1");
  cancel.Cancel();
  runner.join();
  client().Delete(resources::kConfigMaps, "default", fmt::format("bump-{}", ns_), {}).IgnoreError();
}

TEST_F(KubeIntegrationTest, WatchEndsCleanlyOnCancel) {
  Cancellation cancel;
  absl::Status result;
  std::thread watcher([&] {
    result = client().Watch(
        resources::kConfigMaps, ns_, {}, [](WatchEvent&&) { return true; }, cancel);
  });
  absl::SleepFor(absl::Milliseconds(300));  // let it connect; the result is the same if not
  const absl::Time cancelled_at = absl::Now();
  cancel.Cancel();
  watcher.join();
  EXPECT_EQ(result.code(), absl::StatusCode::kCancelled) << result;
  EXPECT_LT(absl::Now() - cancelled_at, absl::Milliseconds(500));
}

// A child process running kmm-lease-candidate; its stdout lines arrive through a pipe.
class Candidate {
 public:
  Candidate(const std::string& ns, const std::string& identity) {
    int fds[2];
    if (pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    const std::string kubeconfig = KubeconfigPath();
    std::vector<std::string> args = {
        KMM_LEASE_CANDIDATE, kubeconfig, ns, "kmm-test-lease", identity, "3000", "2000", "250"};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn(&pid_, KMM_LEASE_CANDIDATE, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
    reader_ = std::thread([this] {
      char line[256];
      while (out_ != nullptr && std::fgets(line, sizeof(line), out_) != nullptr) {
        absl::MutexLock lock(&mu_);
        if (std::string(line) == "leading\n") leading_ = true;
        if (std::string(line) == "stopped\n") leading_ = false;
      }
    });
  }
  ~Candidate() {
    Kill(SIGKILL);
    if (reader_.joinable()) reader_.join();
    if (out_ != nullptr) std::fclose(out_);
  }
  bool leading() {
    absl::MutexLock lock(&mu_);
    return leading_;
  }
  void Kill(int signal) {
    if (pid_ > 0) {
      kill(pid_, signal);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::thread reader_;
  absl::Mutex mu_;
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
};

TEST_F(KubeIntegrationTest, TwoProcessesContendForOneLeaseAndFailOver) {
  Candidate a(ns_, "candidate-a");
  Candidate b(ns_, "candidate-b");
  ASSERT_TRUE(WaitUntil([&] { return a.leading() || b.leading(); }));
  // Exactly one leads, and keeps leading while it renews.
  for (int i = 0; i < 20; ++i) {
    ASSERT_NE(a.leading(), b.leading());
    absl::SleepFor(absl::Milliseconds(100));
  }
  Candidate& leader = a.leading() ? a : b;
  Candidate& follower = a.leading() ? b : a;
  const absl::Time killed_at = absl::Now();
  leader.Kill(SIGKILL);  // no release: the follower must wait the lease out
  ASSERT_TRUE(WaitUntil([&] { return follower.leading(); }, absl::Seconds(20)));
  const absl::Duration failover = absl::Now() - killed_at;
  // Within the lease duration (3 s) plus a retry period and scheduling slack.
  EXPECT_LT(failover, absl::Milliseconds(3000 + 250 + 750)) << absl::FormatDuration(failover);

  // A graceful stop releases the Lease at once.
  absl::StatusOr<json> lease = client().Get(resources::kLeases, ns_, "kmm-test-lease");
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_GE((*lease)["spec"]["leaseTransitions"].get<int>(), 1);
  follower.Kill(SIGTERM);
  lease = client().Get(resources::kLeases, ns_, "kmm-test-lease");
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "");
}

}  // namespace
}  // namespace kmm::kube
