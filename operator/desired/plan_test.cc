#include "operator/desired/plan.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

api::Module TwoMappingModule(bool third_party_plugin) {
  json module = {
      {"apiVersion", "kmm.sigs.x-k8s.io/v1beta1"},
      {"kind", "Module"},
      {"metadata", {{"name", "m"}, {"namespace", "ns"}, {"uid", "u"}}},
      {"spec",
       {{"selector", json::object()},
        {"moduleLoader",
         {{"container",
           {{"modprobe", {{"moduleName", "m"}}},
            {"kernelMappings",
             {{{"literal", "5.15.0-43-generic"}, {"containerImage", "img:${KERNEL_FULL_VERSION}"}},
              {{"regexp", "-gke$"}, {"containerImage", "img:gke-$KERNEL_X"}}}}}}}}}}};
  if (third_party_plugin) module["spec"]["devicePlugin"] = {{"container", {{"image", "plugin:1"}}}};
  return *api::ParseModule(module);
}

json Node(const std::string& name, const std::string& kernel, json labels = json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"status", {{"nodeInfo", {{"kernelVersion", kernel}}}}}};
}

TEST(PlanTest, OneLoaderDaemonSetPerMappedKernelAndLabelsForNodes) {
  std::vector<json> nodes = {
      Node("a", "5.15.0-43-generic", {{std::string(kKernelVersionLabel), "5.15.0-43-generic"}}),
      Node("b", "5.4.0-1049-gke"), Node("c", "6.1.0-1-amd64"), Node("d", "5.4.0-1049-gke")};
  Plan plan = PlanModule(TwoMappingModule(true), nodes, {});
  EXPECT_EQ(plan.list["kind"], "List");
  std::vector<std::string> summary;
  for (const json& item : plan.list["items"]) {
    summary.push_back(item["kind"].get<std::string>() + " " +
                      item["metadata"]["name"].get<std::string>());
  }
  EXPECT_THAT(summary,
              ::testing::ElementsAre("Node b", "Node c", "Node d",
                                     "DaemonSet " + LoaderDaemonSetName("m", "5.15.0-43-generic"),
                                     "DaemonSet " + LoaderDaemonSetName("m", "5.4.0-1049-gke"),
                                     "DaemonSet m-device-plugin"));
  EXPECT_EQ(plan.list["items"][1]["metadata"]["labels"][std::string(kKernelVersionLabel)],
            "6.1.0-1-amd64");
  EXPECT_EQ(plan.list["items"][4]["spec"]["template"]["spec"]["initContainers"][1]["image"],
            "img:gke-5");
  EXPECT_EQ(plan.list["items"][4]["spec"]["template"]["spec"]["nodeSelector"]
                     [std::string(kKernelVersionLabel)],
            "5.4.0-1049-gke");
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_THAT(plan.warnings[0],
              ::testing::HasSubstr("no kernel mapping matches kernel 6.1.0-1-amd64 (nodes: c)"));
}

TEST(PlanTest, TheThirdPartyPluginRunsWhereTheModuleIsReady) {
  Plan plan = PlanModule(TwoMappingModule(true), {}, {});
  ASSERT_EQ(plan.list["items"].size(), 1u);
  const json& plugin = plan.list["items"][0];
  EXPECT_EQ(plugin["spec"]["template"]["spec"]["nodeSelector"]["kmm.node.kubernetes.io/ns.m.ready"],
            "");
  EXPECT_EQ(plugin["spec"]["template"]["spec"]["containers"][0]["image"], "plugin:1");
  EXPECT_EQ(plugin["metadata"]["ownerReferences"][0]["uid"], "u");
}

TEST(PlanTest, AVersionedModuleTargetsOnlyNodesLabelledForItsVersion) {
  api::Module module = TwoMappingModule(false);
  module.spec.module_loader->container.version = "v2";
  const std::string label = ModuleVersionLabel("ns", "m");
  std::vector<NodeInfo> nodes = {NodeInfoFrom(Node("a", "5.15.0-43-generic", {{label, "v2"}})),
                                 NodeInfoFrom(Node("b", "5.15.0-43-generic", {{label, "v1"}})),
                                 NodeInfoFrom(Node("c", "5.15.0-43-generic"))};
  const ModulePlan plan = PlanFor(module, nodes);
  EXPECT_EQ(plan.matching_nodes, 3);
  ASSERT_EQ(plan.loaders.size(), 1u);
  EXPECT_THAT(plan.loaders[0].nodes, ::testing::ElementsAre("a"));
  EXPECT_EQ(plan.version, "v2");
}

TEST(PlanTest, AModuleWithOnlyADevicePluginNeedsNoKernelMapping) {
  api::Module module = TwoMappingModule(true);
  module.spec.module_loader.reset();
  const ModulePlan plan = PlanFor(module, {NodeInfoFrom(Node("c", "6.1.0-1-amd64"))});
  EXPECT_FALSE(plan.has_module_loader);
  EXPECT_TRUE(plan.unmapped.empty());
  EXPECT_TRUE(plan.loaders.empty());
  EXPECT_EQ(plan.matching_nodes, 1);
  Plan printed = PlanModule(module, {Node("c", "6.1.0-1-amd64")}, {});
  ASSERT_EQ(printed.list["items"].size(), 2u);  // the node's kernel label, the plugin
  EXPECT_FALSE(printed.list["items"][1]["spec"]["template"]["spec"]["nodeSelector"].contains(
      "kmm.node.kubernetes.io/ns.m.ready"));
}

TEST(PlanTest, OnlyDraIsNamedAsNotActedOnWithWhatToDo) {
  json module = {{"metadata", {{"name", "m"}, {"namespace", "ns"}}},
                 {"spec",
                  {{"selector", json::object()},
                   {"imageRebuildTriggerGeneration", 2},
                   {"moduleLoader",
                    {{"container",
                      {{"modprobe", {{"moduleName", "m"}}},
                       {"sign",
                        {{"keySecret", {{"name", "k"}}},
                         {"certSecret", {{"name", "c"}}},
                         {"filesToSign", {"/opt/lib/modules/6.1.0/m.ko"}}}},
                       {"kernelMappings",
                        {{{"literal", "6.1.0"},
                          {"containerImage", "img:v1"},
                          {"build", {{"dockerfileConfigMap", {{"name", "d"}}}}},
                          {"registryTLS", {{"insecure", true}}}}}}}}}}}}};
  EXPECT_THAT(UnsupportedFieldsOf(*api::ParseModule(module)), ::testing::IsEmpty())
      << "builds, signing, registryTLS and the rebuild trigger are acted on";
  json node = {{"metadata", {{"name", "n1"}, {"labels", json::object()}}},
               {"status", {{"nodeInfo", {{"kernelVersion", "6.1.0"}}}}}};
  Plan plan = PlanModule(*api::ParseModule(module), {node}, {});
  EXPECT_THAT(plan.warnings,
              ::testing::Contains(::testing::HasSubstr(
                  "kernel 6.1.0: the operator first asks the registry for img:v1; if it is "
                  "missing or was made from other inputs, a build, then a sign, Job makes it")));

  module["spec"]["dra"] = {{"driverName", "kmm.example.com"}, {"container", {{"image", "dra:v1"}}}};
  std::vector<std::string> fields;
  for (const UnsupportedField& field : UnsupportedFieldsOf(*api::ParseModule(module))) {
    fields.push_back(field.field);
    EXPECT_THAT(field.advice, ::testing::HasSubstr("remove"));
  }
  EXPECT_THAT(fields, ::testing::ElementsAre("spec.dra"));
}

TEST(PlanTest, AnImageWithoutATagIsAcceptedWithAWarningNamingLatest) {
  EXPECT_TRUE(ImageHasExplicitTag("registry.local:5000/org/kmod:v1"));
  EXPECT_TRUE(ImageHasExplicitTag("kmod@sha256:0123"));
  EXPECT_FALSE(ImageHasExplicitTag("registry.local:5000/org/kmod"));
  json module = {
      {"metadata", {{"name", "m"}, {"namespace", "ns"}}},
      {"spec",
       {{"selector", json::object()},
        {"moduleLoader",
         {{"container",
           {{"modprobe", {{"moduleName", "m"}}},
            {"kernelMappings",
             {{{"literal", "6.1.0"}, {"containerImage", "registry.local:5000/org/kmod"}}}}}}}}}}};
  Plan plan = PlanModule(*api::ParseModule(module), {Node("a", "6.1.0")}, {});
  EXPECT_THAT(plan.warnings,
              ::testing::Contains(::testing::HasSubstr(
                  "\"registry.local:5000/org/kmod\" has no tag, so the container runtime pulls "
                  "\"registry.local:5000/org/kmod:latest\"")));
}

TEST(PlanTest, TheExpectedStatusComesFromTheStatusFunction) {
  Plan plan = PlanModule(TwoMappingModule(false),
                         {Node("a", "5.15.0-43-generic"), Node("c", "6.1.0-1-amd64")}, {});
  EXPECT_EQ(plan.expected_status["moduleLoader"]["desiredNumber"], 1);
  EXPECT_EQ(plan.expected_status["conditions"][2]["reason"], "NoKernelMapping");
}

}  // namespace
}  // namespace kmm::desired
