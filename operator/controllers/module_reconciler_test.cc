// The Module reconciler's decisions over a fake API (the caches are real informers over it):
// ordered replacement, labels before deletions, invalid Modules, the finalizer. The same
// behaviour against the real control plane is test/cluster/operator-test.sh.
#include "operator/controllers/module_reconciler.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/controllers/testing/harness.h"
#include "operator/controllers/testing/objects.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"
#include "operator/kube/testing/fake_kube_client.h"

namespace kmm::controllers {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;

using testing::CurrentHashes;
using testing::Harness;
using testing::LoaderPod;
using testing::Module;
using testing::Node;
using testing::NotReady;
using testing::PodDeletes;
using testing::Writes;

TEST(ModuleReconcilerTest, AppliesTheLoaderDaemonSetAndLabelsReadyNodes) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, Module());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kNodes, Node("n2", false));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_THAT(Writes(client), Contains(HasSubstr("apply daemonsets ns/m-loader-")));
  auto [template_hash, kernel_hash] = CurrentHashes(client);
  client.Put(kube::resources::kPods, LoaderPod("p1", "n1", template_hash, kernel_hash));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  json n1 = *client.Get(kube::resources::kNodes, "", "n1");
  json n2 = *client.Get(kube::resources::kNodes, "", "n2");
  EXPECT_TRUE(n1["metadata"]["labels"].contains(desired::ModuleReadyLabel("ns", "m")));
  EXPECT_FALSE(n2["metadata"]["labels"].contains(desired::ModuleReadyLabel("ns", "m")));
  json module = *client.Get(kube::resources::kModules, "ns", "m");
  EXPECT_EQ(module["status"]["moduleLoader"]["nodesMatchingSelectorNumber"], 2);
}

TEST(ModuleReconcilerTest, ReplacesOutdatedPodsOneNodeAtATimeLabelFirst) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, Module());
  client.Put(kube::resources::kNodes, Node("n1", true));
  client.Put(kube::resources::kNodes, Node("n2", true));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  auto [template_hash, kernel_hash] = CurrentHashes(client);
  client.Put(kube::resources::kPods, LoaderPod("p1", "n1", "old", kernel_hash));
  client.Put(kube::resources::kPods, LoaderPod("p2", "n2", "old", kernel_hash));
  // Both pods are Ready with the old template, so both nodes carry the label.
  client.Put(kube::resources::kNodes, Node("n1", true));
  client.Put(kube::resources::kNodes, Node("n2", true));
  const size_t before = Writes(client).size();
  {
    Harness harness(client);
    absl::StatusOr<kube::Result> result = harness.Reconcile();
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_GT(result->requeue_after, absl::ZeroDuration());  // progressing: look again
  }
  std::vector<std::string> writes = Writes(client);
  writes.erase(writes.begin(), writes.begin() + static_cast<long>(before));
  std::vector<std::string> deletes, label_patches;
  for (const std::string& write : writes) {
    if (write.rfind("delete pods", 0) == 0) deletes.push_back(write);
  }
  ASSERT_EQ(deletes.size(), 1u) << ::testing::PrintToString(writes);
  EXPECT_EQ(deletes[0], "delete pods ns/p1");
  // n1's label was removed before its pod went.
  auto label = std::find(writes.begin(), writes.end(), "patch nodes n1");
  auto pod = std::find(writes.begin(), writes.end(), "delete pods ns/p1");
  EXPECT_LT(label, pod) << ::testing::PrintToString(writes);
  EXPECT_FALSE((*client.Get(kube::resources::kNodes, "", "n1"))["metadata"]["labels"].contains(
      desired::ModuleReadyLabel("ns", "m")));
}

TEST(ModuleReconcilerTest, OutdatedPodsThatAreNotReadyAreAllReplacedAtOnce) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, Module());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kNodes, Node("n2", false));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  auto [template_hash, kernel_hash] = CurrentHashes(client);
  // A wrong image: neither old pod ever became Ready. The fixed spec must reach both.
  client.Put(kube::resources::kPods, NotReady(LoaderPod("p1", "n1", "old", kernel_hash)));
  client.Put(kube::resources::kPods, NotReady(LoaderPod("p2", "n2", "old", kernel_hash)));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_THAT(PodDeletes(client),
              ::testing::UnorderedElementsAre("delete pods ns/p1", "delete pods ns/p2"));
}

TEST(ModuleReconcilerTest, ABrokenNodeDoesNotHoldBackTheRollout) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, Module());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kNodes, Node("n2", true));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  auto [template_hash, kernel_hash] = CurrentHashes(client);
  // n1's current pod has not become Ready for an hour; n2's pod is Ready but outdated.
  client.Put(kube::resources::kPods,
             NotReady(LoaderPod("p1", "n1", template_hash, kernel_hash), "2026-01-01T00:00:00Z"));
  client.Put(kube::resources::kPods, LoaderPod("p2", "n2", "old", kernel_hash));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_THAT(PodDeletes(client), ::testing::ElementsAre("delete pods ns/p2"));
}

TEST(ModuleReconcilerTest, AStartingPodHoldsBackTheNextReplacement) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, Module());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kNodes, Node("n2", true));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  auto [template_hash, kernel_hash] = CurrentHashes(client);
  // n1's Ready pod was just replaced and its new pod is starting: n2 waits its turn.
  FakeClock clock;
  json n1 = Node("n1", false);
  n1["metadata"]["labels"][desired::ModuleUpdatingLabel("ns", "m")] =
      std::to_string(absl::ToUnixSeconds(clock.Now()));
  client.Put(kube::resources::kNodes, n1);
  client.Put(kube::resources::kPods,
             NotReady(LoaderPod("p1", "n1", template_hash, kernel_hash),
                      absl::FormatTime(absl::RFC3339_sec, clock.Now(), absl::UTCTimeZone())));
  client.Put(kube::resources::kPods, LoaderPod("p2", "n2", "old", kernel_hash));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile(clock).ok());
  }
  EXPECT_TRUE(PodDeletes(client).empty()) << ::testing::PrintToString(PodDeletes(client));
  // ... but not past the start deadline: then n1 is broken, and the label goes.
  clock.Advance(absl::Minutes(6));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile(clock).ok());
  }
  EXPECT_THAT(PodDeletes(client), ::testing::ElementsAre("delete pods ns/p2"));
  EXPECT_FALSE((*client.Get(kube::resources::kNodes, "", "n1"))["metadata"]["labels"].contains(
      desired::ModuleUpdatingLabel("ns", "m")));
}

TEST(ModuleReconcilerTest, ANodeThatWasNotServingNeverHoldsBackTheRollout) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, Module());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kNodes, Node("n2", true));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  auto [template_hash, kernel_hash] = CurrentHashes(client);
  // n1's pod never became Ready (it was replaced at once as outdated and unready); its new
  // pod is starting, just as young, but n1 was not serving: n2 is replaced meanwhile.
  client.Put(kube::resources::kPods,
             NotReady(LoaderPod("p1", "n1", template_hash, kernel_hash),
                      absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())));
  client.Put(kube::resources::kPods, LoaderPod("p2", "n2", "old", kernel_hash));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_THAT(PodDeletes(client), ::testing::ElementsAre("delete pods ns/p2"));
  // n2 was serving: it now holds back the next one until its new pod is Ready.
  EXPECT_TRUE((*client.Get(kube::resources::kNodes, "", "n2"))["metadata"]["labels"].contains(
      desired::ModuleUpdatingLabel("ns", "m")));
}

TEST(ModuleReconcilerTest, AnInvalidModuleIsDegradedAndGetsNothing) {
  kube::testing::FakeKubeClient client;
  client.Put(
      kube::resources::kModules,
      Module({{"moduleLoader",
               {{"container",
                 {{"kernelMappings",
                   {{{"literal", "6.1.0"}, {"regexp", "x"}, {"containerImage", "img:v1"}}}}}}}}}));
  client.Put(kube::resources::kNodes, Node("n1", false));
  Harness harness(client);
  absl::StatusOr<kube::Result> result = harness.Reconcile();
  ASSERT_TRUE(result.ok());
  for (const std::string& write : Writes(client))
    EXPECT_THAT(write, ::testing::Not(HasSubstr("daemonsets")));
  json module = *client.Get(kube::resources::kModules, "ns", "m");
  json degraded;
  for (const json& condition : module["status"]["conditions"]) {
    if (condition["type"] == "Degraded") degraded = condition;
  }
  EXPECT_EQ(degraded["status"], "True");
  EXPECT_EQ(degraded["reason"], "InvalidSpec");
  EXPECT_THAT(degraded["message"].get<std::string>(), HasSubstr("mutually exclusive"));
}

TEST(ModuleReconcilerTest, AModuleThatBecameInvalidCanStillBeDeleted) {
  kube::testing::FakeKubeClient client;
  json module =
      Module({{"moduleLoader",
               {{"container",
                 {{"kernelMappings",
                   {{{"literal", "6.1.0"}, {"regexp", "x"}, {"containerImage", "i:v1"}}}}}}}}});
  module["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z";
  client.Put(kube::resources::kModules, module);
  client.Put(kube::resources::kNodes, Node("n1", false));
  Harness harness(client);
  ASSERT_TRUE(harness.Reconcile().ok());
  EXPECT_TRUE(
      (*client.Get(kube::resources::kModules, "ns", "m"))["metadata"]["finalizers"].empty());
}

TEST(ModuleReconcilerTest, TheFinalizerStaysUntilEveryLoaderPodIsGone) {
  kube::testing::FakeKubeClient client;
  json module = Module();
  module["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z";
  client.Put(kube::resources::kModules, module);
  client.Put(kube::resources::kNodes, Node("n1", true));
  client.Put(kube::resources::kPods, LoaderPod("p1", "n1", "h", "k"));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_FALSE((*client.Get(kube::resources::kNodes, "", "n1"))["metadata"]["labels"].contains(
      desired::ModuleReadyLabel("ns", "m")));
  json still = *client.Get(kube::resources::kModules, "ns", "m");
  EXPECT_THAT(still["metadata"]["finalizers"], Contains(std::string(desired::kModuleFinalizer)));
  EXPECT_EQ(still["status"]["nodes"][0]["node"], "n1");

  ASSERT_TRUE(client.Delete(kube::resources::kPods, "ns", "p1", {}).ok());
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_TRUE(
      (*client.Get(kube::resources::kModules, "ns", "m"))["metadata"]["finalizers"].empty());
}

// A loader pod told to stop: terminating, with its unload finalizer and, once the loader has
// exited, its exit code and termination message.
json StoppedLoaderPod(const std::string& node, std::optional<int> exit_code,
                      const std::string& message = "") {
  json pod = LoaderPod("p1", node, "h", "k");
  pod["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z";
  pod["metadata"]["finalizers"] = {desired::kUnloadFinalizer};
  pod["status"]["initContainerStatuses"] = {
      {{"name", "copy-modules"}, {"state", {{"terminated", {{"exitCode", 0}}}}}}};
  if (exit_code) {
    pod["status"]["phase"] = *exit_code == 0 ? "Succeeded" : "Failed";
    pod["status"]["containerStatuses"] = {
        {{"name", "loader"},
         {"state", {{"terminated", {{"exitCode", *exit_code}, {"message", message}}}}}}};
  }
  return pod;
}

json DeletedModule() {
  json module = Module();
  module["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z";
  return module;
}

bool HasUnloadFinalizer(kube::testing::FakeKubeClient& client, const std::string& pod) {
  absl::StatusOr<json> object = client.Get(kube::resources::kPods, "ns", pod);
  if (!object.ok()) return false;
  for (const json& finalizer : (*object)["metadata"].value("finalizers", json::array())) {
    if (finalizer == desired::kUnloadFinalizer) return true;
  }
  return false;
}

TEST(ModuleReconcilerTest, ALoaderThatGaveUpHoldsTheFinalizerAndTheUnloadIsRetried) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, DeletedModule());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kPods,
             StoppedLoaderPod("n1", 1, "unload failed: kmm_ci_a is still in use (EBUSY, 1 users)"));
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  json module = *client.Get(kube::resources::kModules, "ns", "m");
  EXPECT_THAT(module["metadata"]["finalizers"], Contains(std::string(desired::kModuleFinalizer)));
  ASSERT_EQ(module["status"]["nodes"].size(), 1u) << module["status"].dump();
  EXPECT_EQ(module["status"]["nodes"][0]["node"], "n1");
  EXPECT_EQ(module["status"]["nodes"][0]["reason"], "UnloadBlocked");
  EXPECT_THAT(module["status"]["nodes"][0]["message"].get<std::string>(),
              HasSubstr("kmm_ci_a is still in use"));
  EXPECT_TRUE(HasUnloadFinalizer(client, "p1")) << "the stopped pod is the record of the node";
  absl::StatusOr<json> retry = client.Get(kube::resources::kPods, "ns", "p1-unload");
  ASSERT_TRUE(retry.ok()) << "a pod retries the unload on n1";
  EXPECT_EQ((*retry)["spec"]["nodeName"], "n1");
  EXPECT_EQ((*retry)["spec"]["containers"][0]["command"][1], "unload");

  // The retry succeeds once the device is free: the loader pod is released, the retry goes.
  json succeeded = *retry;
  succeeded["status"]["phase"] = "Succeeded";
  client.Put(kube::resources::kPods, succeeded);
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_FALSE(HasUnloadFinalizer(client, "p1"));
  EXPECT_FALSE(client.Get(kube::resources::kPods, "ns", "p1-unload").ok());
  EXPECT_THAT((*client.Get(kube::resources::kModules, "ns", "m"))["metadata"]["finalizers"],
              Contains(std::string(desired::kModuleFinalizer)))
      << "until the API server removes the released pod";

  ASSERT_TRUE(client.Delete(kube::resources::kPods, "ns", "p1", {}).ok());
  {
    Harness harness(client);
    ASSERT_TRUE(harness.Reconcile().ok());
  }
  EXPECT_TRUE(
      (*client.Get(kube::resources::kModules, "ns", "m"))["metadata"]["finalizers"].empty());
}

TEST(ModuleReconcilerTest, AConfirmedUnloadReleasesTheLoaderPodWithoutARetry) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, DeletedModule());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kPods, StoppedLoaderPod("n1", 0, "unloaded"));
  Harness harness(client);
  ASSERT_TRUE(harness.Reconcile().ok());
  EXPECT_FALSE(HasUnloadFinalizer(client, "p1"));
  EXPECT_FALSE(client.Get(kube::resources::kPods, "ns", "p1-unload").ok());
}

TEST(ModuleReconcilerTest, AStoppingLoaderIsReportedAsUnloadingUntilItExits) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, DeletedModule());
  client.Put(kube::resources::kNodes, Node("n1", false));
  client.Put(kube::resources::kPods, StoppedLoaderPod("n1", std::nullopt));
  Harness harness(client);
  ASSERT_TRUE(harness.Reconcile().ok());
  EXPECT_TRUE(HasUnloadFinalizer(client, "p1"));
  EXPECT_FALSE(client.Get(kube::resources::kPods, "ns", "p1-unload").ok());
}

TEST(ModuleReconcilerTest, ALoaderPodThatNeverGotItsModulesLoadedNothingAndIsReleased) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, DeletedModule());
  client.Put(kube::resources::kNodes, Node("n1", false));
  json pod = StoppedLoaderPod("n1", 137);  // killed when deleted, never past its init
  pod["status"]["initContainerStatuses"] = {
      {{"name", "copy-modules"},
       {"state", {{"waiting", {{"reason", "ImagePullBackOff"}, {"message", "not found"}}}}}}};
  client.Put(kube::resources::kPods, pod);
  Harness harness(client);
  ASSERT_TRUE(harness.Reconcile().ok());
  EXPECT_FALSE(HasUnloadFinalizer(client, "p1"));
  EXPECT_FALSE(client.Get(kube::resources::kPods, "ns", "p1-unload").ok())
      << "a retry would need the same missing image";
}

TEST(ModuleReconcilerTest, ALoaderPodOnANodeThatIsGoneIsReleased) {
  kube::testing::FakeKubeClient client;
  client.Put(kube::resources::kModules, DeletedModule());
  client.Put(kube::resources::kPods, StoppedLoaderPod("n9", 1, "unload failed: busy"));
  Harness harness(client);
  ASSERT_TRUE(harness.Reconcile().ok());
  EXPECT_FALSE(HasUnloadFinalizer(client, "p1"));
  EXPECT_FALSE(client.Get(kube::resources::kPods, "ns", "p1-unload").ok());
}

}  // namespace
}  // namespace kmm::controllers
