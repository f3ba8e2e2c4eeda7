#include "operator/desired/node_selection.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

json Node(const std::string& name, const std::string& kernel, json labels = json::object(),
          json taints = json::array()) {
  return {{"metadata", {{"name", name}, {"labels", labels}}},
          {"spec", {{"taints", taints}}},
          {"status", {{"nodeInfo", {{"kernelVersion", kernel}}}}}};
}

api::Module ModuleWithMappings() {
  api::Module module;
  module.metadata.name = "m";
  module.metadata.namespace_name = "ns";
  module.spec.selector = {{"pool", "gpu"}};
  api::ModuleLoaderSpec loader;
  loader.container.modprobe.module_name = "m";
  api::KernelMapping literal;
  literal.literal = "5.15.0-43-generic";
  literal.container_image = "img:1";
  api::KernelMapping regexp;
  regexp.regexp = "gke$";
  regexp.container_image = "img:gke";
  loader.container.kernel_mappings = {literal, regexp};
  module.spec.module_loader = loader;
  return module;
}

TEST(NodeSelectionTest, GroupsSelectedNodesByKernelWithTheirMapping) {
  std::vector<NodeInfo> nodes;
  for (const json& node :
       {Node("a", "5.15.0-43-generic", {{"pool", "gpu"}}),
        Node("b", "5.4.0-1049-gke", {{"pool", "gpu"}}),
        Node("c", "5.15.0-43-generic", {{"pool", "gpu"}}),
        Node("d", "5.15.0-43-generic", {{"pool", "cpu"}}),
        Node("e", "6.1.0-1-amd64", {{"pool", "gpu"}}), Node("f", "", {{"pool", "gpu"}})}) {
    nodes.push_back(NodeInfoFrom(node));
  }
  std::vector<KernelGroup> groups = GroupTargetNodes(ModuleWithMappings(), nodes);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].kernel, "5.15.0-43-generic");
  EXPECT_THAT(groups[0].nodes, ::testing::ElementsAre("a", "c"));
  ASSERT_TRUE(groups[0].mapping.has_value());
  EXPECT_EQ(groups[0].mapping->container_image, "img:1");
  EXPECT_EQ(groups[1].kernel, "5.4.0-1049-gke");
  EXPECT_EQ(groups[1].mapping->container_image, "img:gke");
  EXPECT_EQ(groups[2].kernel, "6.1.0-1-amd64");
  EXPECT_FALSE(groups[2].mapping.has_value());
}

TEST(NodeSelectionTest, TaintsMustBeToleratedExceptThoseEveryDaemonSetTolerates) {
  const json no_schedule = {{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoSchedule"}};
  const json prefer = {{"key", "x"}, {"effect", "PreferNoSchedule"}};
  const json cordoned = {{"key", "node.kubernetes.io/unschedulable"}, {"effect", "NoSchedule"}};
  EXPECT_FALSE(ToleratesTaints({}, {no_schedule}));
  EXPECT_TRUE(ToleratesTaints({}, {prefer, cordoned}));
  EXPECT_TRUE(ToleratesTaints({{{"key", "dedicated"}, {"operator", "Equal"}, {"value", "gpu"}}},
                              {no_schedule}));
  EXPECT_FALSE(ToleratesTaints({{{"key", "dedicated"}, {"value", "cpu"}}}, {no_schedule}));
  EXPECT_TRUE(ToleratesTaints({{{"key", "dedicated"}, {"operator", "Exists"}}}, {no_schedule}));
  EXPECT_TRUE(ToleratesTaints({{{"operator", "Exists"}}}, {no_schedule}));
  EXPECT_FALSE(ToleratesTaints(
      {{{"key", "dedicated"}, {"operator", "Exists"}, {"effect", "NoExecute"}}}, {no_schedule}));
}

TEST(NodeSelectionTest, UntoleratedNodesAreNotTargets) {
  api::Module module = ModuleWithMappings();
  std::vector<NodeInfo> nodes = {NodeInfoFrom(Node("a", "5.15.0-43-generic", {{"pool", "gpu"}},
                                                   {{{"key", "k"}, {"effect", "NoExecute"}}}))};
  EXPECT_TRUE(GroupTargetNodes(module, nodes).empty());
  module.spec.tolerations = {{{"key", "k"}, {"operator", "Exists"}}};
  EXPECT_EQ(GroupTargetNodes(module, nodes).size(), 1u);
}

}  // namespace
}  // namespace kmm::desired
