#include "operator/kube/field_filter.h"

#include "gtest/gtest.h"

namespace kmm::kube {
namespace {

TEST(FieldFilterTest, KeepsTheListedPathsAndTheIdentity) {
  nlohmann::json node = nlohmann::json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "n1", "uid": "u", "resourceVersion": "9", "labels": {"a": "b"},
                 "managedFields": [{"manager": "kubelet"}], "annotations": {"x": "y"}},
    "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDR": "10.0.0.0/24"},
    "status": {"nodeInfo": {"kernelVersion": "6.1.0", "osImage": "Debian"},
               "images": [{"names": ["big"]}]}})");
  nlohmann::json trimmed =
      KeepFields(node, {"/metadata/labels", "/spec/taints", "/status/nodeInfo/kernelVersion",
                        "/status/conditions"});
  EXPECT_EQ(trimmed, nlohmann::json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "n1", "uid": "u", "resourceVersion": "9", "labels": {"a": "b"}},
    "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
    "status": {"nodeInfo": {"kernelVersion": "6.1.0"}}})"));
}

}  // namespace
}  // namespace kmm::kube
