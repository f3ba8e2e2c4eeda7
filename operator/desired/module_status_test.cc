#include "operator/desired/module_status.h"

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::desired {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json ConditionOf(const json& status, const std::string& type) {
  for (const json& condition : status["conditions"]) {
    if (condition["type"] == type) return condition;
  }
  return nullptr;
}

ModulePlan OneKernelPlan(int nodes) {
  ModulePlan plan;
  plan.has_module_loader = true;
  plan.matching_nodes = nodes;
  LoaderTarget target;
  target.kernel = "6.1.0";
  for (int i = 0; i < nodes; ++i) target.nodes.push_back(fmt::format("n{}", i));
  plan.loaders.push_back(target);
  return plan;
}

TEST(ModuleStatusTest, ConvergedIsReadyAndNotDegraded) {
  const ModulePlan plan = OneKernelPlan(3);
  const json status = ModuleStatusFor(plan, ConvergedRollout(plan), 7);
  EXPECT_EQ(
      status["moduleLoader"],
      json({{"nodesMatchingSelectorNumber", 3}, {"desiredNumber", 3}, {"availableNumber", 3}}));
  EXPECT_EQ(ConditionOf(status, "Ready")["status"], "True");
  EXPECT_EQ(ConditionOf(status, "Ready")["message"], "3 of 3 nodes loaded");
  EXPECT_EQ(ConditionOf(status, "Ready")["observedGeneration"], 7);
  EXPECT_EQ(ConditionOf(status, "Progressing")["status"], "False");
  EXPECT_EQ(ConditionOf(status, "Degraded")["status"], "False");
  EXPECT_TRUE(ConditionOf(status, "Unsupported").is_null());
  EXPECT_EQ(status["nodes"], json::array());
}

TEST(ModuleStatusTest, AStartingRolloutIsProgressingNotReady) {
  const ModulePlan plan = OneKernelPlan(3);
  RolloutState rollout = ConvergedRollout(plan);
  rollout.loaders_available = 1;
  const json status = ModuleStatusFor(plan, rollout, 1);
  EXPECT_EQ(ConditionOf(status, "Ready")["status"], "False");
  EXPECT_EQ(ConditionOf(status, "Ready")["reason"], "Progressing");
  EXPECT_EQ(ConditionOf(status, "Progressing")["status"], "True");
}

TEST(ModuleStatusTest, UnmappedKernelsOfThousandsOfNodesStayOneShortLine) {
  ModulePlan plan = OneKernelPlan(1);
  KernelGroup unmapped{"5.10.0", {}, std::nullopt};
  for (int i = 0; i < 5000; ++i) unmapped.nodes.push_back(fmt::format("node-{:04}", i));
  plan.unmapped.push_back(unmapped);
  const json degraded = ModuleStatusFor(plan, ConvergedRollout(plan), 1)["conditions"][2];
  EXPECT_EQ(degraded["reason"], "NoKernelMapping");
  EXPECT_EQ(degraded["message"],
            "no kernel mapping for kernel 5.10.0 (nodes: node-0000, node-0001, node-0002 and "
            "4997 more)");
}

TEST(ModuleStatusTest, ProblemsAreGroupedByReasonAndBounded) {
  const ModulePlan plan = OneKernelPlan(5000);
  RolloutState rollout = ConvergedRollout(plan);
  rollout.in_transition = true;
  for (int i = 0; i < 3000; ++i) {
    rollout.problems.push_back({fmt::format("n{}", i), "ImagePullFailed", std::string(5000, 'i')});
  }
  rollout.problems.push_back({"n4000", "UnloadBlocked", "kmm_ci_a is in use"});
  rollout.problems.push_back({"n4001", "Unloading", "in progress"});
  const json status = ModuleStatusFor(plan, rollout, 1);
  EXPECT_EQ(status["nodesWithProblemsNumber"], 3002);
  EXPECT_EQ(status["nodes"].size(), kMaxListedNodes);
  const json degraded = ConditionOf(status, "Degraded");
  EXPECT_EQ(degraded["reason"], "ImagePullFailed,UnloadBlocked");
  const std::string message = degraded["message"];
  EXPECT_LE(message.size(), kMaxMessageBytes);
  EXPECT_THAT(message, HasSubstr("ImagePullFailed on 3000 nodes (n0, n1, n2 and 2997 more)"));
  // The first line was too long to keep whole; the other reason is still counted.
  EXPECT_THAT(message, HasSubstr("and 1 more (see status.nodes and events)"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("Unloading")));
}

TEST(ModuleStatusTest, AModuleWithOnlyADevicePluginIsReadyWhenItsPluginIs) {
  ModulePlan plan;
  plan.matching_nodes = 2;
  plan.third_party_plugin = true;
  RolloutState rollout = ConvergedRollout(plan);
  EXPECT_EQ(rollout.plugins_desired, 2);
  json status = ModuleStatusFor(plan, rollout, 1);
  EXPECT_EQ(ConditionOf(status, "Ready")["message"], "2 of 2 nodes running the device plugin");
  EXPECT_EQ(status["moduleLoader"]["nodesMatchingSelectorNumber"], 0);
  rollout.plugins_available = 1;
  status = ModuleStatusFor(plan, rollout, 1);
  EXPECT_EQ(ConditionOf(status, "Ready")["status"], "False");
  EXPECT_EQ(ConditionOf(status, "Degraded")["status"], "False");
}

TEST(ModuleStatusTest, UnsupportedFieldsGetTheirOwnCondition) {
  ModulePlan plan = OneKernelPlan(1);
  plan.unsupported.push_back({"spec.dra", "use a device plugin"});
  const json unsupported =
      ConditionOf(ModuleStatusFor(plan, ConvergedRollout(plan), 1), "Unsupported");
  EXPECT_EQ(unsupported["status"], "True");
  EXPECT_EQ(unsupported["reason"], "FieldNotSupportedYet");
  EXPECT_EQ(unsupported["message"], "spec.dra is not supported yet: use a device plugin");
}

TEST(ModuleStatusTest, ImagesBeingMadeAreProgressAndImagesThatFailAreDegraded) {
  ModulePlan plan = OneKernelPlan(1);
  RolloutState rollout;
  rollout.images.push_back(
      {"6.1.0-57-amd64", "r/m:6.1.0-57-amd64", "Building", "Job m-build-1 is running", true});
  json status = ModuleStatusFor(plan, rollout, 1);
  EXPECT_EQ(ConditionOf(status, "Ready")["status"], "False");
  EXPECT_EQ(ConditionOf(status, "Progressing")["status"], "True");
  EXPECT_EQ(ConditionOf(status, "Progressing")["reason"], "ImageBuild");
  EXPECT_EQ(ConditionOf(status, "Progressing")["message"],
            "0 outdated, 0 available of 0; Building for kernel 6.1.0-57-amd64: Job m-build-1 is "
            "running");
  EXPECT_EQ(ConditionOf(status, "Degraded")["status"], "False");

  rollout.images.push_back({"6.1.0-58-amd64", "r/m:6.1.0-58-amd64", "SignFailed",
                            "Job m-sign-2 failed: sign-file: key.pem: no such file", false});
  status = ModuleStatusFor(plan, rollout, 1);
  EXPECT_EQ(ConditionOf(status, "Degraded")["status"], "True");
  EXPECT_EQ(ConditionOf(status, "Degraded")["reason"], "SignFailed");
  EXPECT_EQ(ConditionOf(status, "Degraded")["message"],
            "SignFailed for kernel 6.1.0-58-amd64 (r/m:6.1.0-58-amd64): Job m-sign-2 failed: "
            "sign-file: key.pem: no such file");
}

}  // namespace
}  // namespace kmm::desired
