#include "operator/desired/unload_pod.h"

#include "gtest/gtest.h"
#include "operator/desired/loader_daemonset.h"
#include "operator/desired/testing/testdata.h"
#include "operator/kube/yaml.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

using testing::TestdataYaml;

TEST(UnloadPodTest, IsExactlyTheExpectedObject) {
  // Built from the loader DaemonSet whose golden file loader_daemonset_test checks.
  const json built = UnloadPodFor(TestdataYaml("loader_daemonset.yaml"),
                                  "kmm-ci-a-loader-f778688500-x7k2p", "worker-3");
  const json expected = TestdataYaml("unload_pod.yaml");
  EXPECT_EQ(built, expected) << "built:\n"
                             << kube::ToYaml(built) << "\ndiff (RFC 6902, expected -> built):\n"
                             << json::diff(expected, built).dump(2);
}

TEST(UnloadPodTest, RunsTheSameConfigAsTheLoaderButUnloads) {
  const json daemonset = TestdataYaml("loader_daemonset.yaml");
  const json pod = UnloadPodFor(daemonset, "p", "worker-3");
  const json& loader = daemonset["spec"]["template"]["spec"]["containers"][0];
  const json& unloader = pod["spec"]["containers"][0];
  EXPECT_EQ(unloader["env"], loader["env"]) << "the same loader config";
  EXPECT_EQ(unloader["command"][1], "unload");
  EXPECT_EQ(pod["spec"]["initContainers"], daemonset["spec"]["template"]["spec"]["initContainers"]);
  EXPECT_FALSE(pod["metadata"].contains("finalizers"))
      << "only loader pods wait for a confirmation";
  EXPECT_EQ(UnloadPodName("p"), "p-unload");
}

}  // namespace
}  // namespace kmm::desired
