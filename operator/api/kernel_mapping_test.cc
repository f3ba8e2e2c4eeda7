#include "operator/api/kernel_mapping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace kmm::api {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

Module FromJson(const json& object) {
  absl::StatusOr<Module> module = ParseModule(object);
  EXPECT_TRUE(module.ok()) << module.status();
  return module.ok() ? *module : Module{};
}

Module Fixture(const std::string& name) {
  std::ifstream file(std::string(KMM_API_TESTDATA) + "/" + name);
  std::stringstream text;
  text << file.rdbuf();
  return FromJson(json::parse(text.str()));
}

// One mapping per platform kmm targets (EKS, GKE, AKS, bare-metal Ubuntu), in the order a
// cluster administrator would write them.
Module LabModule() {
  return FromJson(json::parse(R"({
    "metadata": {"name": "kmm-ci-a", "namespace": "kmm-ci"},
    "spec": {
      "moduleLoader": {"container": {
        "modprobe": {"moduleName": "kmm_ci_a"},
        "containerImage": "registry.example/kmm-lab/kmm-ci-a:default-${KERNEL_FULL_VERSION}",
        "kernelMappings": [
          {"literal": "5.4.196-108.356.amzn2.x86_64",
           "containerImage": "registry.example/kmm-lab/kmm-ci-a:eks-pinned"},
          {"regexp": "^.+\\.amzn2\\.x86_64$",
           "containerImage": "registry.example/kmm-lab/kmm-ci-a:eks-${KERNEL_XYZ}"},
          {"regexp": "-gke$", "containerImage": "registry.example/kmm-lab/kmm-ci-a:gke-${KERNEL_FULL_VERSION}"},
          {"regexp": "^5\\.10\\.[0-9]+$", "containerImage": "registry.example/kmm-lab/kmm-ci-a:cos-${KERNEL_Z}"},
          {"regexp": "azure"},
          {"literal": "5.15.0-43-generic",
           "containerImage": "registry.example/kmm-lab/kmm-ci-a:ubuntu-${KERNEL_X}.${KERNEL_Y}"}
        ]
      }},
      "selector": {}
    }
  })"));
}

struct LabKernel {
  std::string node_kernel;
  size_t mapping_index;
  std::string image;
};

void PrintTo(const LabKernel& c, std::ostream* os) { *os << '"' << c.node_kernel << '"'; }

class LabKernels : public ::testing::TestWithParam<LabKernel> {};

TEST_P(LabKernels, MapToTheFirstMatchingMappingWithVariablesSubstituted) {
  std::optional<ResolvedMapping> mapping = FindKernelMapping(LabModule(), GetParam().node_kernel);
  ASSERT_TRUE(mapping.has_value()) << GetParam().node_kernel;
  EXPECT_EQ(mapping->mapping_index, GetParam().mapping_index);
  EXPECT_EQ(mapping->container_image, GetParam().image);
}

INSTANTIATE_TEST_SUITE_P(
    KmmLab, LabKernels,
    ::testing::Values(
        // EKS: the literal comes first, so it wins over the amzn2 regexp that also matches.
        LabKernel{"5.4.196-108.356.amzn2.x86_64", 0,
                  "registry.example/kmm-lab/kmm-ci-a:eks-pinned"},
        LabKernel{"5.4.190-107.353.amzn2.x86_64", 1,
                  "registry.example/kmm-lab/kmm-ci-a:eks-5.4.190"},
        LabKernel{"5.4.0-1049-gke", 2, "registry.example/kmm-lab/kmm-ci-a:gke-5.4.0-1049-gke"},
        LabKernel{"5.10.123", 3, "registry.example/kmm-lab/kmm-ci-a:cos-123"},
        // A mapping without containerImage uses the container's.
        LabKernel{"5.4.0-1089-azure", 4,
                  "registry.example/kmm-lab/kmm-ci-a:default-5.4.0-1089-azure"},
        LabKernel{"5.15.0-43-generic", 5, "registry.example/kmm-lab/kmm-ci-a:ubuntu-5.15"},
        // The kubelet may report a trailing '+', which is not part of the kernel version.
        LabKernel{"5.15.0-43-generic+", 5, "registry.example/kmm-lab/kmm-ci-a:ubuntu-5.15"}));

TEST(FindKernelMapping, NoMatchingMappingGivesNothing) {
  EXPECT_FALSE(FindKernelMapping(LabModule(), "6.1.0-18-amd64").has_value());
  EXPECT_FALSE(FindKernelMapping(LabModule(), "").has_value());
}

TEST(FindKernelMapping, ModuleWithoutModuleLoaderMatchesNothing) {
  Module module = LabModule();
  module.spec.module_loader.reset();
  EXPECT_FALSE(FindKernelMapping(module, "5.10.123").has_value());
}

TEST(FindKernelMapping, RemovesOnlyOneTrailingPlus) {
  Module module = LabModule();
  std::optional<ResolvedMapping> mapping = FindKernelMapping(module, "5.15.0-43-generic+");
  ASSERT_TRUE(mapping.has_value());
  EXPECT_EQ(mapping->kernel_version, "5.15.0-43-generic");
  EXPECT_EQ(mapping->variables.kernel_full_version, "5.15.0-43-generic");
  EXPECT_FALSE(FindKernelMapping(module, "5.15.0-43-generic++").has_value());
  EXPECT_EQ(NodeKernelVersion("5.10.123+"), "5.10.123");
  EXPECT_EQ(NodeKernelVersion("5.10.123"), "5.10.123");
  EXPECT_EQ(NodeKernelVersion("+"), "");
}

TEST(FindKernelMapping, LiteralMatchesExactlyOnly) {
  Module module = LabModule();
  // Neither a prefix nor a superstring of the literal matches it.
  std::optional<ResolvedMapping> mapping =
      FindKernelMapping(module, "5.15.0-43-generic-lowlatency");
  EXPECT_FALSE(mapping.has_value());
  EXPECT_FALSE(FindKernelMapping(module, "5.15.0-43").has_value());
}

TEST(FindKernelMapping, RegexpIsAnUnanchoredSearch) {
  Module module = LabModule();
  auto& mappings = module.spec.module_loader->container.kernel_mappings;
  mappings = {mappings[4]};  // "azure", matched anywhere in the kernel
  EXPECT_TRUE(FindKernelMapping(module, "5.4.0-1089-azure").has_value());
  EXPECT_TRUE(FindKernelMapping(module, "azure-5.4").has_value());
  mappings[0].regexp = "^azure";
  EXPECT_FALSE(FindKernelMapping(module, "5.4.0-1089-azure").has_value());
  mappings[0].regexp = "1089";
  EXPECT_TRUE(FindKernelMapping(module, "5.4.0-1089-azure").has_value());
}

TEST(FindKernelMapping, FirstMatchWins) {
  Module module = LabModule();
  auto& mappings = module.spec.module_loader->container.kernel_mappings;
  KernelMapping catch_all;
  catch_all.regexp = "^.+$";
  catch_all.container_image = "registry.example/kmm-lab/kmm-ci-a:any";
  mappings.insert(mappings.begin() + 2, catch_all);
  for (const char* kernel : {"5.4.0-1049-gke", "5.10.123", "5.4.0-1089-azure"}) {
    std::optional<ResolvedMapping> mapping = FindKernelMapping(module, kernel);
    ASSERT_TRUE(mapping.has_value());
    EXPECT_EQ(mapping->mapping_index, 2u) << kernel;
    EXPECT_EQ(mapping->container_image, "registry.example/kmm-lab/kmm-ci-a:any");
  }
  EXPECT_EQ(FindKernelMapping(module, "5.4.196-108.356.amzn2.x86_64")->mapping_index, 0u);
}

TEST(FindKernelMapping, StopsAtARegexpThatDoesNotCompile) {
  // Upstream returns an error at the first bad regexp rather than trying the next mapping.
  Module module = LabModule();
  auto& mappings = module.spec.module_loader->container.kernel_mappings;
  mappings[2].regexp = "(gke";
  EXPECT_FALSE(FindKernelMapping(module, "5.10.123").has_value());
  // Mappings before it still match.
  EXPECT_TRUE(FindKernelMapping(module, "5.4.190-107.353.amzn2.x86_64").has_value());
}

TEST(FindKernelMapping, IsSafeToCallFromManyThreads) {
  const Module module = LabModule();
  std::vector<std::thread> threads;
  std::atomic<int> matched = 0;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (FindKernelMapping(module, "5.4.0-1089-azure").has_value()) ++matched;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(matched.load(), 800);
}

TEST(FindKernelMapping, MappingInTreeListOverridesTheContainerList) {
  Module module = Fixture("full_module.json");
  // [0] sets nothing: the container's list.
  EXPECT_THAT(FindKernelMapping(module, "5.4.196-108.356.amzn2.x86_64")->in_tree_modules_to_remove,
              ElementsAre("kmm_ci_a_old"));
  // [1] sets an empty list: nothing to remove.
  EXPECT_THAT(FindKernelMapping(module, "5.4.190-107.353.amzn2.x86_64")->in_tree_modules_to_remove,
              ElementsAre());
  // [2] sets its own list.
  EXPECT_THAT(FindKernelMapping(module, "5.4.0-1049-gke")->in_tree_modules_to_remove,
              ElementsAre("kmm_ci_a_intree"));
}

TEST(FindKernelMapping, DeprecatedSingleInTreeModuleReplacesTheList) {
  Module module = LabModule();
  ModuleLoaderContainerSpec& container = module.spec.module_loader->container;
  container.in_tree_module_to_remove = "kmm_ci_a_old";
  EXPECT_THAT(FindKernelMapping(module, "5.10.123")->in_tree_modules_to_remove,
              ElementsAre("kmm_ci_a_old"));
  container.kernel_mappings[3].in_tree_module_to_remove = "kmm_ci_a_cos";
  EXPECT_THAT(FindKernelMapping(module, "5.10.123")->in_tree_modules_to_remove,
              ElementsAre("kmm_ci_a_cos"));
}

TEST(FindKernelMapping, MappingRegistryTlsOverridesTheContainers) {
  Module module = Fixture("full_module.json");
  EXPECT_EQ(FindKernelMapping(module, "5.4.196-108.356.amzn2.x86_64")->registry_tls,
            (TLSOptions{.insecure_skip_tls_verify = true}));
  EXPECT_EQ(FindKernelMapping(module, "5.10.123")->registry_tls, (TLSOptions{.insecure = true}));
  EXPECT_EQ(FindKernelMapping(LabModule(), "5.10.123")->registry_tls, TLSOptions{});
}

TEST(FindKernelMapping, ContainerImageDefaultIsSubstitutedWithModuleNameAndNamespace) {
  Module module = Fixture("full_module.json");
  EXPECT_EQ(FindKernelMapping(module, "5.10.123")->container_image,
            "registry.example/kmm-lab/kmm-ci-a:5.10.123-kmm-ci");
}

TEST(FindKernelMapping, BuildFromOnlyTheContainerOrOnlyTheMappingIsUsedAsIs) {
  Module module = Fixture("full_module.json");
  // [3] has no build: the container's.
  std::optional<ResolvedMapping> mapping = FindKernelMapping(module, "5.10.123");
  ASSERT_TRUE(mapping->build.has_value());
  EXPECT_EQ(*mapping->build, *module.spec.module_loader->container.build);
  // Only the mapping's.
  module.spec.module_loader->container.build.reset();
  mapping = FindKernelMapping(module, "5.4.190-107.353.amzn2.x86_64");
  EXPECT_EQ(*mapping->build, *module.spec.module_loader->container.kernel_mappings[1].build);
  // Neither.
  EXPECT_FALSE(FindKernelMapping(module, "5.10.123")->build.has_value());
}

TEST(FindKernelMapping, MappingBuildIsMergedIntoTheContainersAsUpstream) {
  Module module = Fixture("full_module.json");
  std::optional<ResolvedMapping> mapping =
      FindKernelMapping(module, "5.4.190-107.353.amzn2.x86_64");
  ASSERT_TRUE(mapping.has_value());
  ASSERT_EQ(mapping->mapping_index, 1u);
  ASSERT_TRUE(mapping->build.has_value());
  const Build& build = *mapping->build;
  EXPECT_EQ(build.dockerfile_config_map.name, "build-module-amzn2");
  // AL_RELEASE is overridden in place.
  EXPECT_EQ(build.build_args,
            (std::vector<BuildArg>{{"KMM_CI_VERSION", "1.0.2"}, {"AL_RELEASE", "2"}}));
  EXPECT_EQ(build.secrets,
            (std::vector<LocalObjectReference>{{"github-token"}, {"amzn2-repo-credentials"}}));
  // The rest comes from the container only.
  EXPECT_EQ(build.base_image_registry_tls, (TLSOptions{.insecure = true}));
  EXPECT_EQ(build.kaniko_params, KanikoParams{"v1.9.1"});
  EXPECT_EQ(build.selector.at("kubernetes.io/arch"), "amd64");
}

TEST(FindKernelMapping, MappingSignIsMergedAndSubstituted) {
  Module module = Fixture("full_module.json");
  std::optional<ResolvedMapping> mapping =
      FindKernelMapping(module, "5.4.190-107.353.amzn2.x86_64");
  ASSERT_TRUE(mapping->sign.has_value());
  const Sign& sign = *mapping->sign;
  EXPECT_EQ(sign.unsigned_image,
            "registry.example/kmm-lab/kmm-ci-a-unsigned:5.4.190-107.353.amzn2.x86_64");
  EXPECT_EQ(sign.key_secret.name, "secureboot-key-amzn2");
  EXPECT_EQ(sign.cert_secret.name, "secureboot-cert-amzn2");
  EXPECT_THAT(sign.files_to_sign,
              ElementsAre("/opt/lib/modules/5.4.190-107.353.amzn2.x86_64/kmm_ci_a.ko",
                          "/opt/lib/modules/5.4.190-107.353.amzn2.x86_64/kmm_ci_b.ko"));
  EXPECT_EQ(sign.unsigned_image_registry_tls, (TLSOptions{true, true}));

  // The mapping's non-empty unsignedImage wins.
  module.spec.module_loader->container.kernel_mappings[1].sign->unsigned_image =
      "registry.example/kmm-lab/amzn2-unsigned:${KERNEL_Z}";
  EXPECT_EQ(FindKernelMapping(module, "5.4.190-107.353.amzn2.x86_64")->sign->unsigned_image,
            "registry.example/kmm-lab/amzn2-unsigned:190");
}

TEST(BuildArgsForKernel, InjectsKernelAndModuleArgsOverridingTheUsers) {
  Module module = Fixture("full_module.json");
  std::optional<ResolvedMapping> mapping = FindKernelMapping(module, "5.10.123+");
  Build build = *mapping->build;
  build.build_args.push_back({"MOD_NAME", "user-value"});
  EXPECT_EQ(BuildArgsForKernel(build, *mapping),
            (std::vector<BuildArg>{{"KMM_CI_VERSION", "1.0.2"},
                                   {"AL_RELEASE", "none"},
                                   {"MOD_NAME", "kmm-ci-a"},
                                   {"KERNEL_FULL_VERSION", "5.10.123"},
                                   {"KERNEL_VERSION", "5.10.123"},
                                   {"MOD_NAMESPACE", "kmm-ci"}}));
}

TEST(ApplyBuildArgOverrides, ReplacesInPlaceAndAppendsTheRestInNameOrder) {
  EXPECT_EQ(
      ApplyBuildArgOverrides({{"A", "1"}, {"B", "2"}, {"A", "3"}},
                             {{"Z", "z"}, {"A", "a"}, {"C", "c"}, {"A", "last"}}),
      (std::vector<BuildArg>{{"A", "last"}, {"B", "2"}, {"A", "last"}, {"C", "c"}, {"Z", "z"}}));
  EXPECT_EQ(ApplyBuildArgOverrides({{"A", "1"}}, {}), (std::vector<BuildArg>{{"A", "1"}}));
}

struct KernelComponents {
  std::string kernel;
  std::string xyz, x, y, z;
};

void PrintTo(const KernelComponents& c, std::ostream* os) { *os << '"' << c.kernel << '"'; }

class KernelVariableComponents : public ::testing::TestWithParam<KernelComponents> {};

TEST_P(KernelVariableComponents, SplitAtDotsCommasAndDashes) {
  const KernelVariables variables = KernelVariablesFor(GetParam().kernel, "kmm-ci-a", "kmm-ci");
  EXPECT_EQ(variables.kernel_full_version, GetParam().kernel);
  EXPECT_EQ(variables.kernel_version, GetParam().kernel);
  EXPECT_EQ(variables.kernel_xyz, GetParam().xyz);
  EXPECT_EQ(variables.kernel_x, GetParam().x);
  EXPECT_EQ(variables.kernel_y, GetParam().y);
  EXPECT_EQ(variables.kernel_z, GetParam().z);
  EXPECT_EQ(variables.mod_name, "kmm-ci-a");
  EXPECT_EQ(variables.mod_namespace, "kmm-ci");
}

INSTANTIATE_TEST_SUITE_P(
    KmmLab, KernelVariableComponents,
    ::testing::Values(KernelComponents{"5.4.196-108.356.amzn2.x86_64", "5.4.196", "5", "4", "196"},
                      KernelComponents{"5.4.0-1049-gke", "5.4.0", "5", "4", "0"},
                      KernelComponents{"5.10.123", "5.10.123", "5", "10", "123"},
                      KernelComponents{"5.4.0-1089-azure", "5.4.0", "5", "4", "0"},
                      KernelComponents{"5.15.0-43-generic", "5.15.0", "5", "15", "0"},
                      KernelComponents{"6.1.0-18-amd64", "6.1.0", "6", "1", "0"},
                      KernelComponents{"4.18.0-372.9.1.el8_6.x86_64", "4.18.0", "4", "18", "0"},
                      // Not a real kernel: missing components are empty (upstream refuses it).
                      KernelComponents{"5.10", "5.10.", "5", "10", ""}));

TEST(KernelVariablesFor, NormalizesCharactersOutsideTheSafeSet) {
  const KernelVariables variables = KernelVariablesFor("5.15.0-43-generic+rt~1/é", "m", "n");
  EXPECT_EQ(variables.kernel_full_version, "5.15.0-43-generic_rt_1__");
  EXPECT_EQ(NormalizeKernelVersion("5.14.0-284.11.1.el9_2.x86_64"), "5.14.0-284.11.1.el9_2.x86_64");
}

const KernelVariables& LabVariables() {
  static const KernelVariables variables =
      KernelVariablesFor("5.4.196-108.356.amzn2.x86_64", "kmm-ci-a", "kmm-ci");
  return variables;
}

struct Substitution {
  std::string text;
  std::string expected;
};

void PrintTo(const Substitution& c, std::ostream* os) { *os << '"' << c.text << '"'; }

class Substitutions : public ::testing::TestWithParam<Substitution> {};

TEST_P(Substitutions, FollowUpstreamEnvsubst) {
  EXPECT_EQ(SubstituteKernelVariables(GetParam().text, LabVariables()), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    EveryVariableInBothForms, Substitutions,
    ::testing::Values(
        Substitution{"$KERNEL_FULL_VERSION", "5.4.196-108.356.amzn2.x86_64"},
        Substitution{"${KERNEL_FULL_VERSION}", "5.4.196-108.356.amzn2.x86_64"},
        Substitution{"$KERNEL_VERSION", "5.4.196-108.356.amzn2.x86_64"},
        Substitution{"${KERNEL_VERSION}", "5.4.196-108.356.amzn2.x86_64"},
        Substitution{"$KERNEL_XYZ", "5.4.196"}, Substitution{"${KERNEL_XYZ}", "5.4.196"},
        Substitution{"$KERNEL_X", "5"}, Substitution{"${KERNEL_X}", "5"},
        Substitution{"$KERNEL_Y", "4"}, Substitution{"${KERNEL_Y}", "4"},
        Substitution{"$KERNEL_Z", "196"}, Substitution{"${KERNEL_Z}", "196"},
        Substitution{"$MOD_NAME", "kmm-ci-a"}, Substitution{"${MOD_NAME}", "kmm-ci-a"},
        Substitution{"$MOD_NAMESPACE", "kmm-ci"}, Substitution{"${MOD_NAMESPACE}", "kmm-ci"},
        Substitution{
            "registry.example/${MOD_NAMESPACE}/$MOD_NAME:$KERNEL_X.${KERNEL_Y}.$KERNEL_Z-x",
            "registry.example/kmm-ci/kmm-ci-a:5.4.196-x"}));

INSTANTIATE_TEST_SUITE_P(
    EdgeCases, Substitutions,
    ::testing::Values(
        Substitution{"no variables here", "no variables here"},
        // Unknown variables become empty, as in upstream's relaxed envsubst.
        Substitution{"img:$KERNEL_XY-${HOME}-end", "img:--end"},
        // Names are greedy: $KERNEL_X_Y is one unknown variable, not $KERNEL_X then "_Y".
        Substitution{"$KERNEL_X_Y|${KERNEL_X}_Y", "|5_Y"},
        Substitution{"cost: $$KERNEL_X", "cost: $KERNEL_X"},
        Substitution{"a $ b $/ c $", "a $ b $/ c $"}, Substitution{"$_ and $-", "$_ and $-"},
        Substitution{"${}", "${}"}, Substitution{"${ KERNEL_X}", "${ KERNEL_X}"},
        Substitution{"img:${KERNEL_X", "img:${KERNEL_X"},
        Substitution{"${UNSET:-fallback}", "fallback"},
        Substitution{"${UNSET-fallback}", "fallback"}, Substitution{"${KERNEL_X:-fallback}", "5"},
        Substitution{"${KERNEL_X=fallback}", "5"}, Substitution{"${UNSET:=$KERNEL_Z}", "196"},
        Substitution{"${UNSET:-${MOD_NAME}}", "kmm-ci-a"}, Substitution{"${KERNEL_X:+set}", "set"},
        Substitution{"${UNSET+set}", ""}));

TEST(SubstituteKernelVariables, ColonFormsTreatEmptyAsUnset) {
  KernelVariables variables = LabVariables();
  variables.mod_namespace = "";
  EXPECT_EQ(SubstituteKernelVariables("${MOD_NAMESPACE:-default}", variables), "default");
  EXPECT_EQ(SubstituteKernelVariables("${MOD_NAMESPACE-default}", variables), "");
}

TEST(HasUnclosedVariableReference, FindsOnlyUnclosedBraces) {
  EXPECT_TRUE(HasUnclosedVariableReference("img:${KERNEL_FULL_VERSION"));
  EXPECT_TRUE(HasUnclosedVariableReference("${KERNEL_X\n}"));
  EXPECT_FALSE(HasUnclosedVariableReference("img:${KERNEL_FULL_VERSION}"));
  EXPECT_FALSE(HasUnclosedVariableReference("img:$KERNEL_FULL_VERSION {"));
  EXPECT_FALSE(HasUnclosedVariableReference("${}"));
}

}  // namespace
}  // namespace kmm::api
