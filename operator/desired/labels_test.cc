#include "operator/desired/labels.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::desired {
namespace {

TEST(LabelsTest, NamesFollowUpstream) {
  EXPECT_EQ(ModuleReadyLabel("ns", "m"), "kmm.node.kubernetes.io/ns.m.ready");
  EXPECT_EQ(DevicePluginReadyLabel("ns", "m"), "kmm.node.kubernetes.io/ns.m.device-plugin-ready");
  EXPECT_EQ(ModuleVersionLabel("ns", "m"), "kmm.node.kubernetes.io/version-module.ns.m");
  EXPECT_EQ(LoaderVersionLabel("ns", "m"),
            "beta.kmm.node.kubernetes.io/version-module-loader.ns.m");
}

TEST(LabelsTest, AKernelReadsAsTheMappingsSeeIt) {
  // Container-Optimized OS reports "5.10.109+"; mappings match "5.10.109", and so does the label.
  EXPECT_EQ(KernelLabelValue("5.10.109+"), "5.10.109");
}

TEST(LabelsTest, RealKernelsAreTheirOwnLabelValue) {
  for (const char* kernel : {"5.4.196-108.356.amzn2.x86_64", "5.4.0-1049-gke", "5.10.123",
                             "5.4.0-1089-azure", "5.15.0-43-generic", "6.1.0-27-amd64"}) {
    EXPECT_EQ(KernelLabelValue(kernel), kernel);
  }
}

TEST(LabelsTest, OtherKernelsBecomeValidDistinctValues) {
  const std::string tilde = KernelLabelValue("5.10.123~");
  EXPECT_THAT(tilde, ::testing::MatchesRegex("5\\.10\\.123-[0-9a-f]{10}"));
  EXPECT_NE(tilde, KernelLabelValue("5.10.123^"));
  const std::string long_kernel(80, '7');
  const std::string value = KernelLabelValue(long_kernel);
  EXPECT_LE(value.size(), 63u);
  EXPECT_NE(value, KernelLabelValue(long_kernel + "8"));
}

}  // namespace
}  // namespace kmm::desired
