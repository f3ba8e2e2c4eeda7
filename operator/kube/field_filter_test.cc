#include "operator/kube/field_filter.h"

#include "gtest/gtest.h"

namespace kmm::kube {
namespace {

TEST(FieldFilterTest, KeepsTheListedPathsAndTheKey) {
  nlohmann::json node = nlohmann::json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "n1", "uid": "u", "resourceVersion": "9", "labels": {"a": "b"},
                 "managedFields": [{"manager": "kubelet"}], "annotations": {"x": "y"}},
    "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDR": "10.0.0.0/24"},
    "status": {"nodeInfo": {"kernelVersion": "6.1.0", "osImage": "Debian"},
               "images": [{"names": ["big"]}]}})");
  nlohmann::json trimmed = KeepFields(
      node,
      {"/metadata/labels", "/spec/taints", "/status/nodeInfo/kernelVersion", "/status/conditions"});
  EXPECT_EQ(trimmed, nlohmann::json::parse(R"({
    "metadata": {"name": "n1", "resourceVersion": "9", "labels": {"a": "b"}},
    "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
    "status": {"nodeInfo": {"kernelVersion": "6.1.0"}}})"));
}

TEST(FieldFilterTest, KeepsUidAndKindOnlyWhenAsked) {
  nlohmann::json pod = nlohmann::json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "namespace": "ns", "uid": "u", "generation": 2,
                 "deletionTimestamp": "2026-01-01T00:00:00Z"}})");
  EXPECT_EQ(KeepFields(pod, {}), nlohmann::json::parse(R"({
    "metadata": {"name": "p", "namespace": "ns", "deletionTimestamp": "2026-01-01T00:00:00Z"}})"));
  EXPECT_EQ(KeepFields(pod, {"/kind", "/metadata/uid"}), nlohmann::json::parse(R"({
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                 "deletionTimestamp": "2026-01-01T00:00:00Z"}})"));
}

}  // namespace
}  // namespace kmm::kube
