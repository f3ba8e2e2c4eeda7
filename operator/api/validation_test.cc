#include "operator/api/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace kmm::api {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

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

// A small valid Module each test changes in one place.
Module Valid() {
  return FromJson(json::parse(R"({
    "apiVersion": "kmm.sigs.x-k8s.io/v1beta1", "kind": "Module",
    "metadata": {"name": "kmm-ci-a", "namespace": "kmm-ci"},
    "spec": {
      "moduleLoader": {"container": {
        "modprobe": {"moduleName": "kmm_ci_a"},
        "kernelMappings": [
          {"literal": "5.4.0-1089-azure", "containerImage": "registry.example/kmm-lab/kmm-ci-a:azure"},
          {"regexp": "^.+$"}
        ],
        "containerImage": "registry.example/kmm-lab/kmm-ci-a:${KERNEL_FULL_VERSION}"
      }},
      "selector": {"kubernetes.io/os": "linux"}
    }
  })"));
}

ModuleLoaderContainerSpec& Loader(Module& module) { return module.spec.module_loader->container; }
KernelMapping& Mapping(Module& module, size_t i) { return Loader(module).kernel_mappings[i]; }

Sign ValidSign(std::vector<std::string> files) {
  Sign sign;
  sign.key_secret.name = "key";
  sign.cert_secret.name = "cert";
  sign.files_to_sign = std::move(files);
  return sign;
}

// The single problem ValidateModule finds.
std::string OnlyProblem(const Module& module) {
  const std::vector<std::string> problems = ValidateModule(module);
  EXPECT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  return problems.empty() ? "" : problems.front();
}

TEST(ValidateModule, AcceptsTheFixturesAndTheBaseModule) {
  EXPECT_THAT(ValidateModule(Valid()), IsEmpty());
  EXPECT_THAT(ValidateModule(Fixture("full_module.json")), IsEmpty());
  EXPECT_THAT(ValidateModule(Fixture("dra_module.json")), IsEmpty());
}

TEST(ValidateModule, NameAndNamespaceMayTogetherBe41Characters) {
  Module module = Valid();
  module.metadata.name = std::string(21, 'n');
  module.metadata.namespace_name = std::string(20, 's');
  EXPECT_THAT(ValidateModule(module), IsEmpty());
  module.metadata.name += "n";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("metadata.name: \"nnnnnnnnnnnnnnnnnnnnnn\" and "
                                             "namespace \"ssssssssssssssssssss\" are 42 "
                                             "characters together, more than the 41"));
}

TEST(ValidateModule, KernelMappingNeedsLiteralOrRegexp) {
  Module module = Valid();
  Mapping(module, 1).regexp.clear();
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings[1]: set literal (one exact "
                        "kernel version) or regexp"));
}

TEST(ValidateModule, KernelMappingCannotHaveBothLiteralAndRegexp) {
  Module module = Valid();
  Mapping(module, 0).regexp = "azure$";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("spec.moduleLoader.container.kernelMappings[0]: "
                                             "literal and regexp are mutually exclusive"));
}

TEST(ValidateModule, KernelMappingRegexpMustCompileAsRe2) {
  Module module = Valid();
  Mapping(module, 1).regexp = R"(^5\.4\.0-(\d+-azure$)";
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings[1].regexp: "
                        "\"^5\\.4\\.0-(\\d+-azure$\" is not a valid RE2 regular expression: "
                        "missing )"));
  // Perl lookahead is not RE2 (nor Go) syntax.
  Mapping(module, 1).regexp = "^5\\.4(?=\\.0)";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("is not a valid RE2 regular expression"));
  // Go/RE2 syntax that other engines lack is fine.
  Mapping(module, 1).regexp = R"(^(?P<xyz>\d+\.\d+\.\d+)-\pN+-gke\z)";
  EXPECT_THAT(ValidateModule(module), IsEmpty());
}

TEST(ValidateModule, ContainerImageNeedsATagOrDigest) {
  Module module = Valid();
  Loader(module).container_image = "registry.example/kmm-lab/kmm-ci-a";
  EXPECT_THAT(
      OnlyProblem(module),
      HasSubstr("spec.moduleLoader.container.containerImage: \"registry.example/kmm-lab/kmm-ci-a\" "
                "has no tag or digest; name one explicitly, e.g. "
                "\"registry.example/kmm-lab/kmm-ci-a:v1\""));
  Loader(module).container_image = "registry.example/kmm-lab/kmm-ci-a@sha256:0123456789abcdef";
  EXPECT_THAT(ValidateModule(module), IsEmpty());
}

TEST(ValidateModule, KernelMappingImageNeedsATagOrDigest) {
  Module module = Valid();
  Mapping(module, 0).container_image = "registry.local/kmm-ci-a";
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings[0].containerImage: "
                        "\"registry.local/kmm-ci-a\" has no tag or digest"));
}

TEST(ValidateModule, EveryKernelMappingNeedsAnImage) {
  Module module = Valid();
  Loader(module).container_image.clear();
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings[1].containerImage: missing; "
                        "set it here or set spec.moduleLoader.container.containerImage"));
  Mapping(module, 1).container_image = "registry.example/kmm-lab/kmm-ci-a:${KERNEL_FULL_VERSION}";
  EXPECT_THAT(ValidateModule(module), IsEmpty());
}

TEST(ValidateModule, ImageWithAnUnclosedVariableIsRejected) {
  Module module = Valid();
  Loader(module).container_image = "registry.example/kmm-lab/kmm-ci-a:${KERNEL_FULL_VERSION";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("has a \"${\" without its closing \"}\""));
}

TEST(ValidateModule, KernelMappingsCannotBeEmpty) {
  Module module = Valid();
  Loader(module).kernel_mappings.clear();
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings: needs at least one mapping"));
}

TEST(ValidateModule, RawArgsCannotBeSetWithModuleName) {
  Module module = Valid();
  Loader(module).modprobe.raw_args = ModprobeArgs{{"kmm_ci_a"}, {}};
  EXPECT_THAT(OnlyProblem(module), HasSubstr("spec.moduleLoader.container.modprobe.rawArgs: "
                                             "cannot be set together with moduleName"));
}

TEST(ValidateModule, WithoutModuleNameBothRawArgsAreNeeded) {
  Module module = Valid();
  Loader(module).modprobe.module_name.clear();
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.modprobe.moduleName: missing; set it, or "
                        "set both rawArgs.load and rawArgs.unload"));
  Loader(module).modprobe.raw_args = ModprobeArgs{{"-d", "/opt", "kmm_ci_a"}, {}};
  EXPECT_THAT(OnlyProblem(module), HasSubstr("modprobe.moduleName: missing"));
  Loader(module).modprobe.raw_args->unload = {"-r", "-d", "/opt", "kmm_ci_a"};
  EXPECT_THAT(ValidateModule(module), IsEmpty());
}

TEST(ValidateModule, ModulesLoadingOrderNeedsTwoEntries) {
  Module module = Valid();
  Loader(module).modprobe.modules_loading_order = std::vector<std::string>{"kmm_ci_a"};
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.modprobe.modulesLoadingOrder: needs at "
                        "least two modules"));
  // An empty list is not "absent", as upstream (non-nil slice).
  Loader(module).modprobe.modules_loading_order = std::vector<std::string>{};
  EXPECT_THAT(OnlyProblem(module), HasSubstr("needs at least two modules"));
  Loader(module).modprobe.modules_loading_order = std::vector<std::string>{"kmm_ci_a", "kmm_ci_b"};
  EXPECT_THAT(ValidateModule(module), IsEmpty());
}

TEST(ValidateModule, ModulesLoadingOrderStartsWithModuleName) {
  Module module = Valid();
  Loader(module).modprobe.modules_loading_order = std::vector<std::string>{"kmm_ci_b", "kmm_ci_a"};
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.modprobe.modulesLoadingOrder[0]: is "
                        "\"kmm_ci_b\" but must be moduleName \"kmm_ci_a\""));
}

TEST(ValidateModule, ModulesLoadingOrderHasNoDuplicates) {
  Module module = Valid();
  Loader(module).modprobe.modules_loading_order =
      std::vector<std::string>{"kmm_ci_a", "kmm_ci_b", "kmm_ci_b"};
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.modprobe.modulesLoadingOrder[2]: "
                        "\"kmm_ci_b\" is listed twice"));
}

TEST(ValidateModule, ModulesLoadingOrderNeedsModuleName) {
  Module module = Valid();
  Loader(module).modprobe.module_name.clear();
  Loader(module).modprobe.raw_args = ModprobeArgs{{"kmm_ci_a"}, {"-r", "kmm_ci_a"}};
  Loader(module).modprobe.modules_loading_order = std::vector<std::string>{"kmm_ci_a", "kmm_ci_b"};
  EXPECT_THAT(OnlyProblem(module), HasSubstr("modulesLoadingOrder: needs moduleName to be set"));
}

TEST(ValidateModule, DirNameMustBeAbsolute) {
  Module module = Valid();
  Loader(module).modprobe.dir_name = "opt";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("spec.moduleLoader.container.modprobe.dirName: "
                                             "\"opt\" must be an absolute path"));
}

TEST(ValidateModule, SignNeedsFilesToSign) {
  Module module = Valid();
  Loader(module).sign = ValidSign({});
  EXPECT_THAT(OnlyProblem(module), HasSubstr("spec.moduleLoader.container.sign.filesToSign: "
                                             "required when sign is set"));
  Loader(module).sign = ValidSign({"/opt/lib/modules/${KERNEL_FULL_VERSION}/kmm_ci_a.ko"});
  EXPECT_THAT(ValidateModule(module), IsEmpty());
}

TEST(ValidateModule, FilesToSignMustBeUnderDirName) {
  Module module = Valid();
  Loader(module).sign = ValidSign({"/opt/lib/modules/5.15.0-43-generic/kmm_ci_a.ko"});
  Mapping(module, 1).sign = ValidSign({"/lib/modules/${KERNEL_FULL_VERSION}/kmm_ci_a.ko"});
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings[1].sign.filesToSign[0]: "
                        "\"/lib/modules/${KERNEL_FULL_VERSION}/kmm_ci_a.ko\" is not under "
                        "modprobe.dirName \"/opt\""));
  // "/optional/..." starts with "/opt" but is not under it.
  Mapping(module, 1).sign = ValidSign({"/optional/kmm_ci_a.ko"});
  EXPECT_THAT(OnlyProblem(module), HasSubstr("is not under modprobe.dirName"));
  // A trailing slash on dirName names the same directory.
  Mapping(module, 1).sign.reset();
  Loader(module).modprobe.dir_name = "/opt/";
  EXPECT_THAT(ValidateModule(module), IsEmpty());
  Loader(module).modprobe.dir_name = "/usr/local";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("spec.moduleLoader.container.sign.filesToSign[0]"));
}

TEST(ValidateModule, ContainerCannotUseBothInTreeFields) {
  Module module = Valid();
  Loader(module).in_tree_modules_to_remove = std::vector<std::string>{"kmm_ci_old"};
  Loader(module).in_tree_module_to_remove = "kmm_ci_old";
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container: inTreeModulesToRemove and the deprecated "
                        "inTreeModuleToRemove cannot both be set"));
}

TEST(ValidateModule, KernelMappingCannotUseBothInTreeFields) {
  Module module = Valid();
  Mapping(module, 0).in_tree_modules_to_remove = std::vector<std::string>{"hv_old"};
  Mapping(module, 0).in_tree_module_to_remove = "hv_old";
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings[0]: inTreeModulesToRemove "
                        "and the deprecated inTreeModuleToRemove cannot both be set"));
}

TEST(ValidateModule, MappingAndContainerMustUseTheSameInTreeField) {
  Module module = Valid();
  Loader(module).in_tree_module_to_remove = "kmm_ci_old";
  Mapping(module, 0).in_tree_modules_to_remove = std::vector<std::string>{"hv_old"};
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.moduleLoader.container.kernelMappings[0]: uses one of "
                        "inTreeModulesToRemove / inTreeModuleToRemove while "
                        "spec.moduleLoader.container uses the other"));
  Loader(module).in_tree_module_to_remove.clear();
  Loader(module).in_tree_modules_to_remove = std::vector<std::string>{"kmm_ci_old"};
  EXPECT_THAT(ValidateModule(module), IsEmpty());
  Mapping(module, 0).in_tree_modules_to_remove.reset();
  Mapping(module, 0).in_tree_module_to_remove = "hv_old";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("uses the other"));
}

TEST(ValidateModule, ImagePullPolicyMustBeAKubernetesOne) {
  Module module = Fixture("full_module.json");
  module.spec.module_loader->container.image_pull_policy = "IfNeeded";
  module.spec.device_plugin->container->image_pull_policy = "always";
  EXPECT_THAT(ValidateModule(module),
              ElementsAre(HasSubstr("spec.moduleLoader.container.imagePullPolicy: \"IfNeeded\" "
                                    "is not Always, IfNotPresent or Never"),
                          HasSubstr("spec.devicePlugin.container.imagePullPolicy: \"always\"")));
}

TEST(ValidateModule, BuiltinDevicePluginMustBeWhatTheLoaderReads) {
  Module module = Valid();
  module.spec.device_plugin = DevicePluginSpec{};
  module.spec.device_plugin->builtin = {
      {"resources", {{{"resourceName", "example.com/kmm-ci-a"}, {"match", {{"kernel", "a*"}}}}}}};
  EXPECT_THAT(ValidateModule(module), IsEmpty());
  // "name" is not the field; the loader would refuse this on every node.
  module.spec.device_plugin->builtin["resources"][0]["name"] = "x";
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("unknown field spec.devicePlugin.builtin.resources[0].name"));
}

TEST(ValidateModule, SelectorMustHoldLabels) {
  Module module = Valid();
  module.spec.selector = {{"example.com/gpu", "true"}, {"node-role.kubernetes.io/worker", ""}};
  EXPECT_THAT(ValidateModule(module), IsEmpty());
  module.spec.selector = {{"has space", "x"}, {"ok", "-bad"}};
  EXPECT_THAT(ValidateModule(module),
              ElementsAre(HasSubstr("spec.selector: key \"has space\" is not a valid label key"),
                          HasSubstr("spec.selector.ok: \"-bad\" is not a valid label value: "
                                    "must start and end with a letter or digit")));
}

Module WithToleration(const char* toleration) {
  Module module = Valid();
  module.spec.tolerations.push_back(json::parse(toleration));
  return module;
}

TEST(ValidateModule, TolerationsFollowKubernetesRules) {
  EXPECT_THAT(ValidateModule(WithToleration(
                  R"({"key": "example.com/gpu", "operator": "Equal", "value": "a100",
                      "effect": "NoSchedule"})")),
              IsEmpty());
  EXPECT_THAT(ValidateModule(WithToleration(R"({"operator": "Exists"})")), IsEmpty());
  EXPECT_THAT(ValidateModule(WithToleration(
                  R"({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                      "effect": "NoExecute", "tolerationSeconds": 60})")),
              IsEmpty());

  EXPECT_THAT(OnlyProblem(WithToleration(R"({"key": "bad key", "operator": "Exists"})")),
              HasSubstr("spec.tolerations[0].key: \"bad key\" is not a valid taint key"));
  EXPECT_THAT(OnlyProblem(WithToleration(R"({"value": "x"})")),
              HasSubstr("spec.tolerations[0].operator: must be Exists when key is empty"));
  EXPECT_THAT(OnlyProblem(WithToleration(
                  R"({"key": "k", "operator": "Exists", "effect": "NoSchedule",
                      "tolerationSeconds": 5})")),
              HasSubstr("spec.tolerations[0].tolerationSeconds: only applies to effect "
                        "NoExecute"));
  EXPECT_THAT(OnlyProblem(WithToleration(R"({"key": "k", "value": "not valid!"})")),
              HasSubstr("spec.tolerations[0].value: \"not valid!\" is not a valid taint value"));
  EXPECT_THAT(OnlyProblem(WithToleration(R"({"key": "k", "operator": "Exists", "value": "v"})")),
              HasSubstr("spec.tolerations[0].value: must be empty when operator is Exists"));
  EXPECT_THAT(OnlyProblem(WithToleration(R"({"key": "k", "operator": "In"})")),
              HasSubstr("spec.tolerations[0].operator: \"In\" is not Equal or Exists"));
  EXPECT_THAT(OnlyProblem(WithToleration(R"({"key": "k", "effect": "NoRun"})")),
              HasSubstr("spec.tolerations[0].effect: \"NoRun\" is not NoSchedule, "
                        "PreferNoSchedule or NoExecute"));
}

TEST(ValidateModule, HostPathVolumesStayUnderDevSysVarOptRun) {
  Module module = Fixture("full_module.json");
  auto& volumes = module.spec.device_plugin->volumes;
  for (const char* path : {"/dev", "/sys/class/misc", "/var/lib/kubelet/device-plugins",
                           "/opt/firmware", "/run/udev", "/var//lib/../run"}) {
    volumes[1]["hostPath"]["path"] = path;
    EXPECT_THAT(ValidateModule(module), IsEmpty()) << path;
  }
  for (const char* path : {"/", "/etc", "/devices", "/var/../etc", "var/lib", ""}) {
    volumes[1]["hostPath"]["path"] = path;
    EXPECT_THAT(OnlyProblem(module),
                HasSubstr(std::string("spec.devicePlugin.volumes[1].hostPath.path: \"") + path +
                          "\" is not allowed"));
  }
  Module dra = Fixture("dra_module.json");
  dra.spec.dra->volumes[0]["hostPath"]["path"] = "/root";
  EXPECT_THAT(OnlyProblem(dra), HasSubstr("spec.dra.volumes[0].hostPath.path: \"/root\""));
}

TEST(ValidateModule, DraAndDevicePluginAreMutuallyExclusive) {
  Module module = Fixture("dra_module.json");
  module.spec.device_plugin = DevicePluginSpec{};
  module.spec.device_plugin->container = ContainerSpec{};
  module.spec.device_plugin->container->image = "registry.example/kmm-lab/dp:v1";
  EXPECT_THAT(OnlyProblem(module),
              HasSubstr("spec.dra: spec.dra and spec.devicePlugin are mutually exclusive"));
}

TEST(ValidateModule, DraDriverNameIsADnsSubdomain) {
  Module module = Fixture("dra_module.json");
  module.spec.dra->driver_name = "KMM_CI.example.com";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("spec.dra.driverName: \"KMM_CI.example.com\" must "
                                             "be lowercase letters, digits, '-' and '.'"));
  module.spec.dra->driver_name = "";
  EXPECT_THAT(OnlyProblem(module), HasSubstr("spec.dra.driverName: \"\" must not be empty"));
}

TEST(ValidateModule, DraDeviceClassNamesAreValidAndUnique) {
  Module module = Fixture("dra_module.json");
  module.spec.dra->device_classes.push_back(module.spec.dra->device_classes[0]);
  module.spec.dra->device_classes.emplace_back().name = "-bad";
  EXPECT_THAT(ValidateModule(module),
              ElementsAre(HasSubstr("spec.dra.deviceClasses[1].name: \"kmm-ci-a.example.com\" is "
                                    "listed twice"),
                          HasSubstr("spec.dra.deviceClasses[2].name: \"-bad\" must be lowercase")));
}

TEST(ValidateModule, ReportsEveryProblem) {
  Module module = Valid();
  module.metadata.name = std::string(40, 'n');
  Mapping(module, 0).regexp = "(";
  Loader(module).modprobe.modules_loading_order = std::vector<std::string>{"x"};
  EXPECT_EQ(ValidateModule(module).size(), 5u) << ::testing::PrintToString(ValidateModule(module));
}

TEST(ImageHasTagOrDigest, AcceptsWhatUpstreamAccepts) {
  EXPECT_TRUE(ImageHasTagOrDigest("registry.example/org/kmod:v1"));
  EXPECT_TRUE(ImageHasTagOrDigest("kmod:${KERNEL_FULL_VERSION}"));
  EXPECT_TRUE(ImageHasTagOrDigest("registry.local:5000/org/kmod:5.10.123"));
  EXPECT_TRUE(ImageHasTagOrDigest("registry.example/org/kmod@sha256:0123abcd"));
  EXPECT_FALSE(ImageHasTagOrDigest("registry.example/org/kmod"));
  // Upstream only looks for ':' or '@'; a Module it accepts must apply here too.
  EXPECT_TRUE(ImageHasTagOrDigest("registry.local:5000/org/kmod"));
  EXPECT_FALSE(ImageHasTagOrDigest(""));
}

}  // namespace
}  // namespace kmm::api
