// The Module reconciler's lifecycle faults, each through the reconciler over the fake API with
// time on a FakeClock: ordered upgrades move only the nodes an administrator labels, a
// third-party plugin leaves a node before its loader, a Module with only a device plugin, fields
// kmm does not act on yet, and a status that stays writable with thousands of failing nodes.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/controllers/module_reconciler.h"
#include "operator/controllers/testing/harness.h"
#include "operator/controllers/testing/objects.h"
#include "operator/desired/labels.h"

namespace kmm::controllers {
namespace {

using nlohmann::json;
using ::testing::Contains;
using testing::CurrentHashes;
using ::testing::ElementsAre;
using testing::Harness;
using ::testing::HasSubstr;
using testing::LoaderPod;
using testing::Module;
using testing::Node;
using testing::NotReady;
using testing::PodDeletes;
using testing::Writes;

using kube::testing::FakeKubeClient;
namespace resources = kube::resources;

std::string Stamp(absl::Time time) {
  return absl::FormatTime(absl::RFC3339_sec, time, absl::UTCTimeZone());
}

std::vector<json> Items(FakeKubeClient& client, const kube::Resource& resource) {
  absl::StatusOr<kube::ObjectList> list = client.List(resource, "ns", {});
  return list.ok() ? list->items : std::vector<json>{};
}

json Labels(FakeKubeClient& client, const std::string& node) {
  return (*client.Get(resources::kNodes, "", node))["metadata"].value("labels", json::object());
}

json StatusOf(FakeKubeClient& client) {
  return (*client.Get(resources::kModules, "ns", "m")).value("status", json::object());
}

json ConditionOf(const json& status, const std::string& type) {
  for (const json& condition : status.value("conditions", json::array())) {
    if (condition["type"] == type) return condition;
  }
  return nullptr;
}

// The loader DaemonSets the fake API holds, by name: their kernel hash and template hash.
std::map<std::string, std::pair<std::string, std::string>> LoaderDaemonSets(
    FakeKubeClient& client) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const json& daemonset : Items(client, resources::kDaemonSets)) {
    if (daemonset["metadata"]["labels"][std::string(desired::kComponentLabel)] != "loader")
      continue;
    const json& meta = daemonset["spec"]["template"]["metadata"];
    out[daemonset["metadata"]["name"]] = {
        meta["labels"][std::string(desired::kKernelHashLabel)],
        meta["annotations"][std::string(desired::kTemplateHashAnnotation)]};
  }
  return out;
}

json Versioned(const std::string& version, const std::string& image) {
  return Module({{"moduleLoader",
                  {{"container",
                    {{"version", version},
                     {"kernelMappings", {{{"literal", "6.1.0"}, {"containerImage", image}}}}}}}}});
}

json WithLabel(json node, const std::string& key, const std::string& value) {
  node["metadata"]["labels"][key] = value;
  return node;
}

TEST(ModuleLifecycleTest, OrderedUpgradeMovesOnlyTheNodesAnAdministratorLabels) {
  FakeKubeClient client;
  const std::string wanted = desired::ModuleVersionLabel("ns", "m");
  const std::string running = desired::LoaderVersionLabel("ns", "m");
  client.Put(resources::kModules, Versioned("v1", "img:v1"));
  client.Put(resources::kNodes, WithLabel(Node("n1", false), wanted, "v1"));
  client.Put(resources::kNodes, WithLabel(Node("n2", false), wanted, "v1"));
  client.Put(resources::kNodes, Node("n3", false));  // not in the upgrade: gets nothing
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_EQ(Labels(client, "n1")[running], "v1");
  EXPECT_EQ(Labels(client, "n2")[running], "v1");
  EXPECT_FALSE(Labels(client, "n3").contains(running));
  auto v1 = LoaderDaemonSets(client);
  ASSERT_EQ(v1.size(), 1u);
  const auto [v1_kernel_hash, v1_template] = v1.begin()->second;
  client.Put(resources::kPods, LoaderPod("p1", "n1", v1_template, v1_kernel_hash));
  client.Put(resources::kPods, LoaderPod("p2", "n2", v1_template, v1_kernel_hash));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_TRUE(Labels(client, "n1").contains(desired::ModuleReadyLabel("ns", "m")));

  // The Module moves to v2: nothing unloads until a node is relabelled.
  json v2 = Versioned("v2", "img:v2");
  v2["metadata"]["generation"] = 2;
  client.Put(resources::kModules, v2);
  const size_t before = Writes(client).size();
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_EQ(LoaderDaemonSets(client).size(), 2u);  // v1 stays while nodes run it
  for (size_t i = before; i < Writes(client).size(); ++i) {
    EXPECT_THAT(Writes(client)[i], ::testing::Not(HasSubstr("delete")));
    EXPECT_THAT(Writes(client)[i], ::testing::Not(HasSubstr("patch nodes")));
  }

  // An administrator moves n1: its ready label and its v1 loader go, n2 is untouched.
  client.Put(resources::kNodes,
             WithLabel(WithLabel(WithLabel(Node("n1", true), wanted, "v2"), running, "v1"),
                       desired::ModuleReadyLabel("ns", "m"), ""));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_FALSE(Labels(client, "n1").contains(running));
  EXPECT_FALSE(Labels(client, "n1").contains(desired::ModuleReadyLabel("ns", "m")));
  EXPECT_EQ(Labels(client, "n2")[running], "v1");
  // v2 is not started while the v1 loader pod (unloading) is still on n1.
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_FALSE(Labels(client, "n1").contains(running));
  // The DaemonSet controller removes it once unloaded; then n1 gets v2.
  ASSERT_TRUE(client.Delete(resources::kPods, "ns", "p1", {}).ok());
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_EQ(Labels(client, "n1")[running], "v2");
  EXPECT_EQ(Labels(client, "n2")[running], "v1");
  EXPECT_EQ(LoaderDaemonSets(client).size(), 2u);  // n2 still runs v1

  // n2 moves too; once no node runs v1, its DaemonSet goes.
  client.Put(resources::kNodes,
             WithLabel(WithLabel(Node("n2", true), wanted, "v2"), running, "v1"));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  ASSERT_TRUE(client.Delete(resources::kPods, "ns", "p2", {}).ok());
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_EQ(Labels(client, "n2")[running], "v2");
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  auto remaining = LoaderDaemonSets(client);
  ASSERT_EQ(remaining.size(), 1u);
  EXPECT_NE(remaining.begin()->second.first, v1_kernel_hash);
  EXPECT_FALSE(Labels(client, "n3").contains(running));
}

json PluginPod(const std::string& name, const std::string& node) {
  json pod = LoaderPod(name, node, "", "");
  pod["metadata"]["labels"][std::string(desired::kComponentLabel)] = "device-plugin";
  pod["metadata"]["labels"].erase(std::string(desired::kKernelHashLabel));
  return pod;
}

TEST(ModuleLifecycleTest, AThirdPartyPluginLeavesTheNodeBeforeItsLoaderBounded) {
  FakeKubeClient client;
  FakeClock clock;
  client.Put(resources::kModules,
             Module({{"devicePlugin", {{"container", {{"image", "plugin:v1"}}}}}}));
  client.Put(resources::kNodes, Node("n1", true));
  ASSERT_TRUE(Harness(client).Reconcile(clock).ok());
  const auto [kernel_hash, current] = LoaderDaemonSets(client).begin()->second;
  client.Put(resources::kPods, LoaderPod("p1", "n1", "outdated", kernel_hash));
  client.Put(resources::kPods, PluginPod("plugin-1", "n1"));
  ASSERT_TRUE(Harness(client).Reconcile(clock).ok());
  // The ready label went, so the plugin DaemonSet stops its pod; the loader waits for that.
  EXPECT_FALSE(Labels(client, "n1").contains(desired::ModuleReadyLabel("ns", "m")));
  EXPECT_TRUE(PodDeletes(client).empty());
  json stopping = PluginPod("plugin-1", "n1");
  stopping["metadata"]["deletionTimestamp"] = Stamp(clock.Now());
  client.Put(resources::kPods, stopping);
  clock.Advance(absl::Minutes(1));
  ASSERT_TRUE(Harness(client).Reconcile(clock).ok());
  EXPECT_TRUE(PodDeletes(client).empty());
  // A plugin that does not stop holds the unload back only so long, and is reported.
  clock.Advance(absl::Minutes(2));
  ASSERT_TRUE(Harness(client).Reconcile(clock).ok());
  EXPECT_THAT(PodDeletes(client), ElementsAre("delete pods ns/p1"));
  bool reported = false;
  for (const json& event : Items(client, resources::kEvents)) {
    reported |= event.value("reason", "") == "DevicePluginStopTimeout";
  }
  EXPECT_TRUE(reported);
}

TEST(ModuleLifecycleTest, APluginThatStoppedLetsTheLoaderGoAtOnce) {
  FakeKubeClient client;
  client.Put(resources::kModules,
             Module({{"devicePlugin", {{"container", {{"image", "plugin:v1"}}}}}}));
  client.Put(resources::kNodes, Node("n1", true));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  const auto [kernel_hash, current] = LoaderDaemonSets(client).begin()->second;
  client.Put(resources::kPods, LoaderPod("p1", "n1", "outdated", kernel_hash));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_THAT(PodDeletes(client), ElementsAre("delete pods ns/p1"));
}

TEST(ModuleLifecycleTest, AnOldKernelsDaemonSetGoesWhileItsLastPodIsStillStopping) {
  // n1 rebooted into the mapped kernel: its new pod is Ready and its plugin runs; the old
  // kernel's pod is still stopping. The old DaemonSet goes without waiting on the plugin,
  // which serves the new pod.
  FakeKubeClient client;
  client.Put(resources::kModules,
             Module({{"devicePlugin", {{"container", {{"image", "plugin:v1"}}}}}}));
  client.Put(resources::kNodes,
             WithLabel(Node("n1", true), desired::DevicePluginReadyLabel("ns", "m"), ""));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  const auto [kernel_hash, current] = LoaderDaemonSets(client).begin()->second;
  json old_daemonset = {{"apiVersion", "apps/v1"},
                        {"kind", "DaemonSet"},
                        {"metadata",
                         {{"name", "m-loader-old"},
                          {"namespace", "ns"},
                          {"labels",
                           {{desired::kModuleNameLabel, "m"},
                            {desired::kComponentLabel, desired::kLoaderComponent},
                            {desired::kKernelHashLabel, "old-kernel"},
                            {desired::kManagedByLabel, desired::kManagedByValue}}}}}};
  client.Put(resources::kDaemonSets, old_daemonset);
  json stopping = LoaderPod("p-old", "n1", "t", "old-kernel");
  stopping["metadata"]["deletionTimestamp"] = Stamp(absl::Now());
  client.Put(resources::kPods, stopping);
  client.Put(resources::kPods, LoaderPod("p-new", "n1", current, kernel_hash));
  client.Put(resources::kPods, PluginPod("plugin-1", "n1"));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  EXPECT_THAT(Writes(client), Contains("delete daemonsets ns/m-loader-old"));
  EXPECT_TRUE(Labels(client, "n1").contains(desired::ModuleReadyLabel("ns", "m")));
}

TEST(ModuleLifecycleTest, AModuleWithOnlyADevicePluginRunsItWhereTheSelectorSays) {
  FakeKubeClient client;
  json module = Module({{"devicePlugin", {{"container", {{"image", "plugin:v1"}}}}}});
  module["spec"].erase("moduleLoader");
  client.Put(resources::kModules, module);
  client.Put(resources::kNodes, Node("n1", false));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  std::vector<json> daemonsets = Items(client, resources::kDaemonSets);
  ASSERT_EQ(daemonsets.size(), 1u);
  EXPECT_EQ(daemonsets[0]["spec"]["template"]["spec"]["nodeSelector"], json({{"pool", "a"}}));
  daemonsets[0]["status"] = {{"desiredNumberScheduled", 1}, {"numberAvailable", 1}};
  client.Put(resources::kDaemonSets, daemonsets[0]);
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  const json status = StatusOf(client);
  EXPECT_EQ(ConditionOf(status, "Degraded")["status"], "False") << status.dump();
  EXPECT_EQ(ConditionOf(status, "Ready")["status"], "True") << status.dump();
  EXPECT_EQ(status["devicePlugin"]["availableNumber"], 1);
  EXPECT_FALSE(Labels(client, "n1").contains(desired::ModuleReadyLabel("ns", "m")));
}

// A DaemonSet just created reports 0 of 0 until its controller has seen it: that is not "loaded
// everywhere", and `kubectl wait --for condition=Ready` must not return then.
TEST(ModuleLifecycleTest, ANewModuleIsNotReadyBeforeItsDaemonSetsReport) {
  FakeKubeClient client;
  client.Put(resources::kModules, Module());
  client.Put(resources::kNodes, Node("n1", false));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  json ready = ConditionOf(StatusOf(client), "Ready");
  EXPECT_EQ(ready["status"], "False") << ready.dump();
  EXPECT_EQ(ready["reason"], "Progressing") << ready.dump();

  // The DaemonSet as the API server stores it, before its controller has looked at it.
  std::vector<json> daemonsets = Items(client, resources::kDaemonSets);
  ASSERT_EQ(daemonsets.size(), 1u);
  daemonsets[0]["metadata"]["generation"] = 1;
  daemonsets[0]["status"] = json::object();
  client.Put(resources::kDaemonSets, daemonsets[0]);
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  ready = ConditionOf(StatusOf(client), "Ready");
  EXPECT_EQ(ready["status"], "False") << ready.dump();

  // Counts for an older generation are not this one's either.
  daemonsets[0]["metadata"]["generation"] = 2;
  daemonsets[0]["status"] = {
      {"observedGeneration", 1}, {"desiredNumberScheduled", 1}, {"numberAvailable", 1}};
  client.Put(resources::kDaemonSets, daemonsets[0]);
  const auto [template_hash, kernel_hash] = CurrentHashes(client);
  client.Put(resources::kPods, LoaderPod("p1", "n1", template_hash, kernel_hash));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  ready = ConditionOf(StatusOf(client), "Ready");
  EXPECT_EQ(ready["status"], "False") << ready.dump();

  daemonsets[0]["status"]["observedGeneration"] = 2;
  client.Put(resources::kDaemonSets, daemonsets[0]);
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  ready = ConditionOf(StatusOf(client), "Ready");
  EXPECT_EQ(ready["status"], "True") << ready.dump();
  EXPECT_EQ(ready["message"], "1 of 1 nodes loaded");
}

TEST(ModuleLifecycleTest, AFieldKmmDoesNotActOnIsNamedInAConditionAndAnEvent) {
  FakeKubeClient client;
  client.Put(
      resources::kModules,
      Module({{"dra", {{"driverName", "kmm.example.com"}, {"container", {{"image", "dra:v1"}}}}}}));
  client.Put(resources::kNodes, Node("n1", false));
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  const json unsupported = ConditionOf(StatusOf(client), "Unsupported");
  ASSERT_FALSE(unsupported.is_null()) << StatusOf(client).dump();
  EXPECT_EQ(unsupported["status"], "True");
  EXPECT_THAT(unsupported["message"].get<std::string>(),
              HasSubstr("spec.dra is not supported yet"));
  std::vector<std::string> reasons;
  for (const json& event : Items(client, resources::kEvents)) {
    reasons.push_back(event.value("reason", ""));
  }
  EXPECT_THAT(reasons, Contains("FieldNotSupportedYet"));
}

TEST(ModuleLifecycleTest, FiveThousandFailingNodesGiveABoundedStatus) {
  FakeKubeClient client;
  client.Put(resources::kModules, Module());
  const std::string long_message(4000, 'x');
  for (int i = 0; i < 5000; ++i) {
    const std::string node = fmt::format("n{:04}", i);
    client.Put(resources::kNodes, Node(node, false));
    json pod =
        NotReady(LoaderPod(fmt::format("p{:04}", i), node, "t", "k"), "2026-01-01T00:00:00Z");
    pod["status"]["containerStatuses"] = {
        {{"state", {{"waiting", {{"reason", "CrashLoopBackOff"}, {"message", "back-off"}}}}},
         {"lastState", {{"terminated", {{"exitCode", 1}, {"message", long_message}}}}}}};
    client.Put(resources::kPods, pod);
  }
  ASSERT_TRUE(Harness(client).Reconcile().ok());
  const json status = StatusOf(client);
  EXPECT_EQ(status["nodesWithProblemsNumber"], 5000);
  EXPECT_EQ(status["nodes"].size(), desired::kMaxListedNodes);
  const std::string message = ConditionOf(status, "Degraded")["message"];
  EXPECT_LE(message.size(), desired::kMaxMessageBytes);
  EXPECT_THAT(message,
              HasSubstr("LoaderCrashLooping on 5000 nodes (n0000, n0001, n0002 and 4997 more)"));
  // Far under what the API server takes in one object (about 1.5 MiB in etcd).
  EXPECT_LT(status.dump().size(), 200u * 1024);
}

}  // namespace
}  // namespace kmm::controllers
