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

}  // namespace
}  // namespace kmm::desired
