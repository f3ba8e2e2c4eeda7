#include "operator/api/module.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "common/status.h"

namespace kmm::api {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

json LoadFixture(const std::string& name) {
  std::ifstream file(std::string(KMM_API_TESTDATA) + "/" + name);
  std::stringstream text;
  text << file.rdbuf();
  return json::parse(text.str());
}

std::string ErrorOf(const json& object) {
  absl::StatusOr<Module> module = ParseModule(object);
  if (module.ok()) return "parsed without error";
  EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(FromAbsl(module.status().message()));
}

// The upstream lab's EKS example (docs/mkdocs/lab/aws/kmm-kmod.yaml), as kubectl sends it.
constexpr std::string_view kLabExample = R"({
  "apiVersion": "kmm.sigs.x-k8s.io/v1beta1",
  "kind": "Module",
  "metadata": {"name": "kmm-ci-a"},
  "spec": {
    "moduleLoader": {
      "container": {
        "modprobe": {"moduleName": "kmm-ci-a"},
        "kernelMappings": [{
          "regexp": "^.+.amzn2",
          "containerImage": "123456789012.dkr.ecr.eu-west-3.amazonaws.com/kmmo-lab:kmm-2.3",
          "build": {
            "buildArgs": [{"name": "CI_BUILD_ARG", "value": "some-build-arg"}],
            "dockerfileConfigMap": {"name": "build-module"}
          }
        }]
      }
    },
    "imageRepoSecret": {"name": "aws-repo-secret"},
    "selector": {"kubernetes.io/hostname": "ip-192-168-13-20.eu-west-3.compute.internal"}
  }
})";

TEST(ParseModule, ReadsEveryFieldOfAFullModule) {
  absl::StatusOr<Module> parsed = ParseModule(LoadFixture("full_module.json"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Module& module = *parsed;

  EXPECT_EQ(module.metadata.name, "kmm-ci-a");
  EXPECT_EQ(module.metadata.namespace_name, "kmm-ci");
  EXPECT_EQ(module.metadata.uid, "8d0c3f0e-3a52-4f5e-9a43-6f1f2f7c0b11");
  EXPECT_EQ(module.metadata.resource_version, "482913");
  EXPECT_EQ(module.metadata.generation, 3);
  EXPECT_EQ(module.metadata.deletion_timestamp, "2022-08-13T10:00:00Z");
  EXPECT_EQ(module.metadata.finalizers,
            std::vector<std::string>{"kmm.node.kubernetes.io/module-finalizer"});
  EXPECT_EQ(module.metadata.labels.at("app.kubernetes.io/part-of"), "kmm-ci");
  EXPECT_EQ(module.metadata.annotations.at("kmm.example.com/owner"), "platform-team");

  ASSERT_TRUE(module.spec.module_loader.has_value());
  EXPECT_EQ(module.spec.module_loader->service_account_name, "kmm-ci-loader");
  const ModuleLoaderContainerSpec& container = module.spec.module_loader->container;
  EXPECT_EQ(container.modprobe.module_name, "kmm_ci_a");
  EXPECT_EQ(container.modprobe.parameters, (std::vector<std::string>{"debug=1", "queues=4"}));
  EXPECT_EQ(container.modprobe.dir_name, "/opt");
  ASSERT_TRUE(container.modprobe.args.has_value());
  EXPECT_EQ(container.modprobe.args->load, std::vector<std::string>{"-v"});
  EXPECT_EQ(container.modprobe.args->unload, std::vector<std::string>{"-v"});
  EXPECT_FALSE(container.modprobe.raw_args.has_value());
  EXPECT_EQ(container.modprobe.firmware_path, "/firmware");
  EXPECT_EQ(container.modprobe.modules_loading_order,
            (std::vector<std::string>{"kmm_ci_a", "kmm_ci_b"}));
  EXPECT_EQ(container.container_image,
            "registry.example/kmm-lab/kmm-ci-a:${KERNEL_XYZ}-${MOD_NAMESPACE}");
  EXPECT_EQ(container.image_pull_policy, "IfNotPresent");
  EXPECT_EQ(container.version, "1.0.2");
  EXPECT_EQ(container.registry_tls, (TLSOptions{.insecure = true}));
  EXPECT_EQ(container.in_tree_modules_to_remove, std::vector<std::string>{"kmm_ci_a_old"});
  EXPECT_EQ(container.in_tree_module_to_remove, "");

  ASSERT_TRUE(container.build.has_value());
  EXPECT_EQ(container.build->build_args,
            (std::vector<BuildArg>{{"KMM_CI_VERSION", "1.0.2"}, {"AL_RELEASE", "none"}}));
  EXPECT_EQ(container.build->dockerfile_config_map.name, "build-module");
  EXPECT_EQ(container.build->base_image_registry_tls, (TLSOptions{.insecure = true}));
  EXPECT_EQ(container.build->secrets, std::vector<LocalObjectReference>{{"github-token"}});
  EXPECT_EQ(container.build->kaniko_params, KanikoParams{"v1.9.1"});
  EXPECT_EQ(container.build->selector.at("kubernetes.io/arch"), "amd64");

  ASSERT_TRUE(container.sign.has_value());
  EXPECT_EQ(container.sign->unsigned_image,
            "registry.example/kmm-lab/kmm-ci-a-unsigned:${KERNEL_FULL_VERSION}");
  EXPECT_EQ(container.sign->unsigned_image_registry_tls, (TLSOptions{true, true}));
  EXPECT_EQ(container.sign->key_secret.name, "secureboot-key");
  EXPECT_EQ(container.sign->cert_secret.name, "secureboot-cert");
  EXPECT_EQ(container.sign->files_to_sign,
            std::vector<std::string>{"/opt/lib/modules/${KERNEL_FULL_VERSION}/kmm_ci_a.ko"});

  ASSERT_EQ(container.kernel_mappings.size(), 4u);
  const KernelMapping& literal = container.kernel_mappings[0];
  EXPECT_EQ(literal.literal, "5.4.196-108.356.amzn2.x86_64");
  EXPECT_EQ(literal.regexp, "");
  EXPECT_EQ(literal.registry_tls, (TLSOptions{.insecure_skip_tls_verify = true}));
  EXPECT_FALSE(literal.in_tree_modules_to_remove.has_value());
  const KernelMapping& amzn2 = container.kernel_mappings[1];
  EXPECT_EQ(amzn2.regexp, "^.+\\.amzn2\\.x86_64$");
  ASSERT_TRUE(amzn2.build.has_value());
  EXPECT_EQ(amzn2.build->dockerfile_config_map.name, "build-module-amzn2");
  ASSERT_TRUE(amzn2.sign.has_value());
  EXPECT_EQ(amzn2.sign->key_secret.name, "secureboot-key-amzn2");
  EXPECT_EQ(amzn2.in_tree_modules_to_remove, std::vector<std::string>{});
  EXPECT_EQ(container.kernel_mappings[2].in_tree_modules_to_remove,
            std::vector<std::string>{"kmm_ci_a_intree"});
  EXPECT_EQ(container.kernel_mappings[3].container_image, "");

  ASSERT_TRUE(module.spec.device_plugin.has_value());
  const DevicePluginSpec& plugin = *module.spec.device_plugin;
  ASSERT_TRUE(plugin.container.has_value());
  EXPECT_EQ(plugin.container->image, "registry.example/kmm-lab/kmm-ci-device-plugin:v0.4.0");
  EXPECT_EQ(plugin.container->image_pull_policy, "Always");
  EXPECT_EQ(plugin.container->command, std::vector<std::string>{"/usr/bin/kmm-ci-device-plugin"});
  EXPECT_EQ(plugin.container->args, std::vector<std::string>{"--resource=example.com/kmm-ci-a"});
  ASSERT_EQ(plugin.container->env.size(), 1u);
  EXPECT_EQ(plugin.container->env[0]["value"], "debug");
  EXPECT_EQ(plugin.container->resources["limits"]["memory"], "64Mi");
  ASSERT_EQ(plugin.container->volume_mounts.size(), 1u);
  EXPECT_EQ(plugin.container->volume_mounts[0]["mountPath"], "/etc/kmm-ci");
  ASSERT_TRUE(plugin.init_container.has_value());
  EXPECT_EQ(plugin.init_container->args, std::vector<std::string>{"/dev/kmm_ci_a"});
  EXPECT_EQ(plugin.service_account_name, "kmm-ci-device-plugin");
  ASSERT_EQ(plugin.volumes.size(), 2u);
  EXPECT_EQ(plugin.volumes[1]["hostPath"]["path"], "/dev");
  EXPECT_EQ(plugin.automount_service_account_token, false);
  EXPECT_EQ(plugin.builtin["resources"][0]["resourceName"], "example.com/kmm-ci-a");

  EXPECT_EQ(module.spec.image_repo_secret, LocalObjectReference{"ecr-pull-secret"});
  EXPECT_EQ(module.spec.selector.at("kubernetes.io/hostname"),
            "ip-192-168-13-20.eu-west-3.compute.internal");
  ASSERT_EQ(module.spec.tolerations.size(), 2u);
  EXPECT_EQ(module.spec.tolerations[1]["tolerationSeconds"], 300);
  EXPECT_EQ(module.spec.image_rebuild_trigger_generation, 2);
  EXPECT_FALSE(module.spec.dra.has_value());

  EXPECT_EQ(module.status.module_loader, (DaemonSetStatus{3, 3, 2}));
  EXPECT_EQ(module.status.device_plugin, (DaemonSetStatus{3, 2, 2}));
  EXPECT_EQ(module.status.dra, DaemonSetStatus{});
  EXPECT_EQ(module.status.image_rebuild_trigger_generation, 2);
}

TEST(ParseModule, KeepsUnknownMetadataAndStatusFieldsVerbatim) {
  absl::StatusOr<Module> module = ParseModule(LoadFixture("full_module.json"));
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_EQ(module->metadata.other["creationTimestamp"], "2022-08-12T09:14:02Z");
  EXPECT_EQ(module->metadata.other["managedFields"][0]["manager"], "kubectl-client-side-apply");
  EXPECT_FALSE(module->metadata.other.contains("name"));
  EXPECT_EQ(module->status.other["conditions"][0]["reason"], "LoaderPodsPending");
  EXPECT_FALSE(module->status.other.contains("moduleLoader"));
}

TEST(ToJson, ReproducesTheFullModuleExactly) {
  const json fixture = LoadFixture("full_module.json");
  absl::StatusOr<Module> module = ParseModule(fixture);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_EQ(ToJson(*module), fixture) << ToJson(*module).dump(2);
}

TEST(ToJson, ReproducesTheDraModuleExactly) {
  const json fixture = LoadFixture("dra_module.json");
  absl::StatusOr<Module> module = ParseModule(fixture);
  ASSERT_TRUE(module.ok()) << module.status();
  ASSERT_TRUE(module->spec.dra.has_value());
  EXPECT_EQ(module->spec.dra->driver_name, "kmm-ci.example.com");
  ASSERT_EQ(module->spec.dra->device_classes.size(), 1u);
  EXPECT_EQ(module->spec.dra->device_classes[0].name, "kmm-ci-a.example.com");
  EXPECT_EQ(module->spec.dra->device_classes[0].config.size(), 1u);
  EXPECT_EQ(module->spec.dra->automount_service_account_token, true);
  EXPECT_EQ(ToJson(*module), fixture) << ToJson(*module).dump(2);
}

TEST(ParseModule, AppliesTheCrdDefaultsToAnUpstreamLabExample) {
  absl::StatusOr<Module> module = ParseModule(json::parse(kLabExample));
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_EQ(module->metadata.namespace_name, "");
  EXPECT_EQ(module->spec.module_loader->container.modprobe.dir_name, "/opt");
  EXPECT_EQ(module->spec.module_loader->container.kernel_mappings[0].build->build_args,
            (std::vector<BuildArg>{{"CI_BUILD_ARG", "some-build-arg"}}));
  // Round trip: what ToJson writes parses back to the same Module.
  absl::StatusOr<Module> again = ParseModule(ToJson(*module));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *module);
  EXPECT_EQ(ToJson(*module)["spec"]["moduleLoader"]["container"]["modprobe"]["dirName"], "/opt");
}

TEST(ParseModule, EmptyDirNameGetsTheDefault) {
  json object = json::parse(kLabExample);
  object["spec"]["moduleLoader"]["container"]["modprobe"]["dirName"] = "";
  absl::StatusOr<Module> module = ParseModule(object);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_EQ(module->spec.module_loader->container.modprobe.dir_name, "/opt");
}

TEST(ParseModule, AbsentAndEmptyListsStayDistinctThroughARoundTrip) {
  json object = json::parse(kLabExample);
  json& container = object["spec"]["moduleLoader"]["container"];
  container["modprobe"]["modulesLoadingOrder"] = json::array();
  container["kernelMappings"][0]["inTreeModulesToRemove"] = json::array();
  absl::StatusOr<Module> module = ParseModule(object);
  ASSERT_TRUE(module.ok()) << module.status();
  const ModuleLoaderContainerSpec& parsed = module->spec.module_loader->container;
  EXPECT_EQ(parsed.modprobe.modules_loading_order, std::vector<std::string>{});
  EXPECT_EQ(parsed.kernel_mappings[0].in_tree_modules_to_remove, std::vector<std::string>{});
  EXPECT_FALSE(parsed.in_tree_modules_to_remove.has_value());
  const json written = ToJson(*module);
  EXPECT_EQ(written["spec"]["moduleLoader"]["container"]["modprobe"]["modulesLoadingOrder"],
            json::array());
  EXPECT_FALSE(written["spec"]["moduleLoader"]["container"].contains("inTreeModulesToRemove"));
}

TEST(ParseModule, NullFieldsCountAsAbsent) {
  json object = json::parse(kLabExample);
  object["spec"]["tolerations"] = nullptr;
  object["spec"]["devicePlugin"] = nullptr;
  object["spec"]["moduleLoader"]["container"]["modprobe"]["modulesLoadingOrder"] = nullptr;
  absl::StatusOr<Module> module = ParseModule(object);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_FALSE(module->spec.device_plugin.has_value());
  EXPECT_FALSE(module->spec.module_loader->container.modprobe.modules_loading_order.has_value());
}

TEST(ParseModule, BuiltinDevicePluginNeedsNoContainer) {
  json object = json::parse(kLabExample);
  object["spec"]["devicePlugin"] = {
      {"builtin", {{"resources", {{{"name", "example.com/kmm-ci-a"}}}}}}};
  absl::StatusOr<Module> module = ParseModule(object);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_FALSE(module->spec.device_plugin->container.has_value());
  EXPECT_EQ(module->spec.device_plugin->builtin["resources"][0]["name"], "example.com/kmm-ci-a");
  EXPECT_EQ(ToJson(*module)["spec"]["devicePlugin"], object["spec"]["devicePlugin"]);
}

TEST(ParseModule, ErrorsNameTheModule) {
  json object = LoadFixture("full_module.json");
  object["spec"]["selector"] = "all";
  EXPECT_THAT(ErrorOf(object), HasSubstr("Module kmm-ci/kmm-ci-a: spec.selector: expected"));
}

TEST(ParseModule, NonObjectIsRejected) {
  EXPECT_EQ(ErrorOf(json::array()), "Module: expected an object, got an array");
}

TEST(ParseModule, WrongApiVersionOrKindIsRejected) {
  json object = json::parse(kLabExample);
  object["apiVersion"] = "kmm.sigs.x-k8s.io/v1beta2";
  object["kind"] = "Modul";
  const std::string error = ErrorOf(object);
  EXPECT_THAT(error, HasSubstr("apiVersion: is \"kmm.sigs.x-k8s.io/v1beta2\", expected "
                               "\"kmm.sigs.x-k8s.io/v1beta1\""));
  EXPECT_THAT(error, HasSubstr("kind: is \"Modul\", expected \"Module\""));
}

TEST(ParseModule, ReportsEveryProblemNotJustTheFirst) {
  json object = LoadFixture("full_module.json");
  object["spec"]["moduleLoader"]["container"]["kernelMappings"][1]["regexp"] = 5;
  object["spec"]["moduleLoader"]["container"]["modprobe"]["modulName"] = "typo";
  object["spec"]["devicePlugin"]["container"]["image"] = true;
  const std::string error = ErrorOf(object);
  EXPECT_THAT(error, HasSubstr("spec.moduleLoader.container.kernelMappings[1].regexp: expected a "
                               "string, got an integer (5)"));
  EXPECT_THAT(error, HasSubstr("unknown field spec.moduleLoader.container.modprobe.modulName"));
  EXPECT_THAT(error, HasSubstr("spec.devicePlugin.container.image: expected a string"));
}

// An unknown field added at `pointer` in the full fixture is reported as `path`.
struct UnknownFieldCase {
  std::string pointer;
  std::string path;
};

void PrintTo(const UnknownFieldCase& c, std::ostream* os) { *os << '"' << c.pointer << '"'; }

class UnknownFields : public ::testing::TestWithParam<UnknownFieldCase> {};

TEST_P(UnknownFields, AreErrorsNamingTheirPath) {
  json object = LoadFixture(GetParam().pointer.starts_with("/spec/dra") ? "dra_module.json"
                                                                        : "full_module.json");
  object[json::json_pointer(GetParam().pointer)]["bogus"] = 1;
  const std::string error = ErrorOf(object);
  const std::string expected = GetParam().path.empty()
                                   ? "unknown field bogus;"
                                   : "unknown field " + GetParam().path + ".bogus;";
  EXPECT_THAT(error, HasSubstr(expected)) << error;
}

INSTANTIATE_TEST_SUITE_P(
    EveryStrictObject, UnknownFields,
    ::testing::Values(
        UnknownFieldCase{"", ""}, UnknownFieldCase{"/spec", "spec"},
        UnknownFieldCase{"/spec/moduleLoader", "spec.moduleLoader"},
        UnknownFieldCase{"/spec/moduleLoader/container", "spec.moduleLoader.container"},
        UnknownFieldCase{"/spec/moduleLoader/container/modprobe",
                         "spec.moduleLoader.container.modprobe"},
        UnknownFieldCase{"/spec/moduleLoader/container/modprobe/args",
                         "spec.moduleLoader.container.modprobe.args"},
        UnknownFieldCase{"/spec/moduleLoader/container/modprobe/rawArgs",
                         "spec.moduleLoader.container.modprobe.rawArgs"},
        UnknownFieldCase{"/spec/moduleLoader/container/kernelMappings/0",
                         "spec.moduleLoader.container.kernelMappings[0]"},
        UnknownFieldCase{"/spec/moduleLoader/container/kernelMappings/0/registryTLS",
                         "spec.moduleLoader.container.kernelMappings[0].registryTLS"},
        UnknownFieldCase{"/spec/moduleLoader/container/kernelMappings/1/build",
                         "spec.moduleLoader.container.kernelMappings[1].build"},
        UnknownFieldCase{"/spec/moduleLoader/container/kernelMappings/1/build/buildArgs/0",
                         "spec.moduleLoader.container.kernelMappings[1].build.buildArgs[0]"},
        UnknownFieldCase{"/spec/moduleLoader/container/kernelMappings/1/sign",
                         "spec.moduleLoader.container.kernelMappings[1].sign"},
        UnknownFieldCase{"/spec/moduleLoader/container/build/dockerfileConfigMap",
                         "spec.moduleLoader.container.build.dockerfileConfigMap"},
        UnknownFieldCase{"/spec/moduleLoader/container/build/baseImageRegistryTLS",
                         "spec.moduleLoader.container.build.baseImageRegistryTLS"},
        UnknownFieldCase{"/spec/moduleLoader/container/build/secrets/0",
                         "spec.moduleLoader.container.build.secrets[0]"},
        UnknownFieldCase{"/spec/moduleLoader/container/build/kanikoParams",
                         "spec.moduleLoader.container.build.kanikoParams"},
        UnknownFieldCase{"/spec/moduleLoader/container/sign", "spec.moduleLoader.container.sign"},
        UnknownFieldCase{"/spec/moduleLoader/container/sign/keySecret",
                         "spec.moduleLoader.container.sign.keySecret"},
        UnknownFieldCase{"/spec/moduleLoader/container/sign/unsignedImageRegistryTLS",
                         "spec.moduleLoader.container.sign.unsignedImageRegistryTLS"},
        UnknownFieldCase{"/spec/moduleLoader/container/registryTLS",
                         "spec.moduleLoader.container.registryTLS"},
        UnknownFieldCase{"/spec/devicePlugin", "spec.devicePlugin"},
        UnknownFieldCase{"/spec/devicePlugin/container", "spec.devicePlugin.container"},
        UnknownFieldCase{"/spec/devicePlugin/initContainer", "spec.devicePlugin.initContainer"},
        UnknownFieldCase{"/spec/imageRepoSecret", "spec.imageRepoSecret"},
        UnknownFieldCase{"/spec/tolerations/0", "spec.tolerations[0]"},
        UnknownFieldCase{"/status/moduleLoader", "status.moduleLoader"},
        UnknownFieldCase{"/spec/dra", "spec.dra"},
        UnknownFieldCase{"/spec/dra/container", "spec.dra.container"},
        UnknownFieldCase{"/spec/dra/deviceClasses/0", "spec.dra.deviceClasses[0]"}));

// Replacing the value at `pointer` in the full fixture with `value` gives an error containing
// `message`.
struct WrongTypeCase {
  std::string pointer;
  json value;
  std::string message;
};

void PrintTo(const WrongTypeCase& c, std::ostream* os) { *os << '"' << c.pointer << '"'; }

class WrongTypes : public ::testing::TestWithParam<WrongTypeCase> {};

TEST_P(WrongTypes, AreErrorsNamingTheirPath) {
  json object = LoadFixture(GetParam().pointer.starts_with("/spec/dra") ? "dra_module.json"
                                                                        : "full_module.json");
  object[json::json_pointer(GetParam().pointer)] = GetParam().value;
  const std::string error = ErrorOf(object);
  EXPECT_THAT(error, HasSubstr(GetParam().message)) << error;
}

INSTANTIATE_TEST_SUITE_P(
    EveryTypedField, WrongTypes,
    ::testing::Values(
        WrongTypeCase{"/spec", "x", "spec: expected an object, got a string"},
        WrongTypeCase{"/metadata/name", 1, "metadata.name: expected a string"},
        WrongTypeCase{"/metadata/generation", "3", "metadata.generation: expected an integer"},
        WrongTypeCase{"/metadata/labels/app.kubernetes.io~1part-of", 1,
                      "metadata.labels.app.kubernetes.io/part-of: expected a string"},
        WrongTypeCase{"/metadata/finalizers", "f", "metadata.finalizers: expected an array"},
        WrongTypeCase{"/spec/selector", json::array(), "spec.selector: expected an object"},
        WrongTypeCase{"/spec/selector/kubernetes.io~1hostname", 1,
                      "spec.selector.kubernetes.io/hostname: expected a string"},
        WrongTypeCase{"/spec/moduleLoader", "x", "spec.moduleLoader: expected an object"},
        WrongTypeCase{"/spec/moduleLoader/serviceAccountName", 1,
                      "spec.moduleLoader.serviceAccountName: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/modprobe/moduleName", 1,
                      "spec.moduleLoader.container.modprobe.moduleName: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/modprobe/parameters/1", 4,
                      "spec.moduleLoader.container.modprobe.parameters[1]: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/modprobe/dirName", false,
                      "spec.moduleLoader.container.modprobe.dirName: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/modprobe/args/load", "-v",
                      "spec.moduleLoader.container.modprobe.args.load: expected an array"},
        WrongTypeCase{"/spec/moduleLoader/container/modprobe/rawArgs", "insmod",
                      "spec.moduleLoader.container.modprobe.rawArgs: expected an object"},
        WrongTypeCase{"/spec/moduleLoader/container/modprobe/firmwarePath", 1,
                      "spec.moduleLoader.container.modprobe.firmwarePath: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/modprobe/modulesLoadingOrder", "a",
                      "spec.moduleLoader.container.modprobe.modulesLoadingOrder: expected an "
                      "array"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings", json::object(),
                      "spec.moduleLoader.container.kernelMappings: expected an array"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/1", "^.+$",
                      "spec.moduleLoader.container.kernelMappings[1]: expected an object, got a "
                      "string"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/1/regexp", 5,
                      "spec.moduleLoader.container.kernelMappings[1].regexp: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/0/literal", 5.4,
                      "spec.moduleLoader.container.kernelMappings[0].literal: expected a string, "
                      "got a number"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/0/registryTLS/insecure", "yes",
                      "spec.moduleLoader.container.kernelMappings[0].registryTLS.insecure: "
                      "expected true or false"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/1/inTreeModulesToRemove",
                      "kmm_ci_a_old",
                      "spec.moduleLoader.container.kernelMappings[1].inTreeModulesToRemove: "
                      "expected an array"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/2/inTreeModuleToRemove",
                      json::array(),
                      "spec.moduleLoader.container.kernelMappings[2].inTreeModuleToRemove: "
                      "expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/1/build/buildArgs/0/value", 2,
                      "spec.moduleLoader.container.kernelMappings[1].build.buildArgs[0].value: "
                      "expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/kernelMappings/1/sign/filesToSign/0", 0,
                      "spec.moduleLoader.container.kernelMappings[1].sign.filesToSign[0]: "
                      "expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/build/secrets", json::object(),
                      "spec.moduleLoader.container.build.secrets: expected an array"},
        WrongTypeCase{"/spec/moduleLoader/container/build/kanikoParams/tag", 1,
                      "spec.moduleLoader.container.build.kanikoParams.tag: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/build/selector", "amd64",
                      "spec.moduleLoader.container.build.selector: expected an object"},
        WrongTypeCase{"/spec/moduleLoader/container/sign/keySecret/name", 1,
                      "spec.moduleLoader.container.sign.keySecret.name: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/sign/unsignedImage", 1,
                      "spec.moduleLoader.container.sign.unsignedImage: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/containerImage", 1,
                      "spec.moduleLoader.container.containerImage: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/imagePullPolicy", 1,
                      "spec.moduleLoader.container.imagePullPolicy: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/version", 1.0,
                      "spec.moduleLoader.container.version: expected a string"},
        WrongTypeCase{"/spec/moduleLoader/container/inTreeModulesToRemove/0", 1,
                      "spec.moduleLoader.container.inTreeModulesToRemove[0]: expected a string"},
        WrongTypeCase{"/spec/devicePlugin/container/image", true,
                      "spec.devicePlugin.container.image: expected a string"},
        WrongTypeCase{"/spec/devicePlugin/container/command", "/bin/plugin",
                      "spec.devicePlugin.container.command: expected an array"},
        WrongTypeCase{"/spec/devicePlugin/container/env/0", "KMM_CI_LOG_LEVEL=debug",
                      "spec.devicePlugin.container.env[0]: expected an object"},
        WrongTypeCase{"/spec/devicePlugin/container/env/0/name", 1,
                      "spec.devicePlugin.container.env[0].name: expected a string"},
        WrongTypeCase{"/spec/devicePlugin/container/resources", json::array(),
                      "spec.devicePlugin.container.resources: expected an object"},
        WrongTypeCase{"/spec/devicePlugin/container/volumeMounts/0/mountPath", nullptr,
                      "spec.devicePlugin.container.volumeMounts[0].mountPath: required field is "
                      "missing"},
        WrongTypeCase{"/spec/devicePlugin/volumes", json::object(),
                      "spec.devicePlugin.volumes: expected an array"},
        WrongTypeCase{"/spec/devicePlugin/automountServiceAccountToken", "false",
                      "spec.devicePlugin.automountServiceAccountToken: expected true or false"},
        WrongTypeCase{"/spec/devicePlugin/builtin", "on",
                      "spec.devicePlugin.builtin: expected an object"},
        WrongTypeCase{"/spec/imageRepoSecret", "ecr-pull-secret",
                      "spec.imageRepoSecret: expected an object"},
        WrongTypeCase{"/spec/tolerations", json::object(), "spec.tolerations: expected an array"},
        WrongTypeCase{"/spec/tolerations/1/tolerationSeconds", "300",
                      "spec.tolerations[1].tolerationSeconds: expected an integer"},
        WrongTypeCase{"/spec/tolerations/0/effect", 1,
                      "spec.tolerations[0].effect: expected a string"},
        WrongTypeCase{"/spec/imageRebuildTriggerGeneration", "2",
                      "spec.imageRebuildTriggerGeneration: expected an integer"},
        WrongTypeCase{"/status/moduleLoader/desiredNumber", "3",
                      "status.moduleLoader.desiredNumber: expected an integer"},
        WrongTypeCase{"/status/devicePlugin/availableNumber", 4294967296,
                      "status.devicePlugin.availableNumber: 4294967296 does not fit in a 32-bit "
                      "integer"},
        WrongTypeCase{"/spec/dra/driverName", 1, "spec.dra.driverName: expected a string"},
        WrongTypeCase{"/spec/dra/deviceClasses/0/selectors/0", "x",
                      "spec.dra.deviceClasses[0].selectors[0]: expected an object"}));

// Removing the field at `pointer` from the full fixture gives an error containing `message`.
struct RequiredCase {
  std::string pointer;
  std::string message;
};

void PrintTo(const RequiredCase& c, std::ostream* os) { *os << '"' << c.pointer << '"'; }

class RequiredFields : public ::testing::TestWithParam<RequiredCase> {};

TEST_P(RequiredFields, AreNamedWhenMissing) {
  json object = LoadFixture(GetParam().pointer.starts_with("/spec/dra") ? "dra_module.json"
                                                                        : "full_module.json");
  const json::json_pointer pointer(GetParam().pointer);
  object[pointer.parent_pointer()].erase(pointer.back());
  const std::string error = ErrorOf(object);
  EXPECT_THAT(error, HasSubstr(GetParam().message)) << error;
}

INSTANTIATE_TEST_SUITE_P(
    EveryRequiredField, RequiredFields,
    ::testing::Values(
        RequiredCase{"/spec", "spec: required field is missing"},
        RequiredCase{"/spec/selector", "spec.selector: required field is missing"},
        RequiredCase{"/spec/moduleLoader/container",
                     "spec.moduleLoader.container: required field is missing"},
        RequiredCase{"/spec/moduleLoader/container/modprobe",
                     "spec.moduleLoader.container.modprobe: required field is missing"},
        RequiredCase{"/spec/moduleLoader/container/kernelMappings",
                     "spec.moduleLoader.container.kernelMappings: required field is missing"},
        RequiredCase{"/spec/moduleLoader/container/build/dockerfileConfigMap",
                     "spec.moduleLoader.container.build.dockerfileConfigMap: required field is "
                     "missing"},
        RequiredCase{"/spec/moduleLoader/container/build/buildArgs/0/name",
                     "spec.moduleLoader.container.build.buildArgs[0].name: required field is "
                     "missing"},
        RequiredCase{"/spec/moduleLoader/container/kernelMappings/1/sign/keySecret",
                     "spec.moduleLoader.container.kernelMappings[1].sign.keySecret: required "
                     "field is missing"},
        RequiredCase{"/spec/moduleLoader/container/sign/certSecret",
                     "spec.moduleLoader.container.sign.certSecret: required field is missing"},
        RequiredCase{"/spec/devicePlugin/container/image",
                     "spec.devicePlugin.container.image: required field is missing"},
        RequiredCase{"/spec/devicePlugin/volumes/0/name",
                     "spec.devicePlugin.volumes[0].name: required field is missing"},
        RequiredCase{"/spec/dra/container", "spec.dra.container: required field is missing"},
        RequiredCase{"/spec/dra/driverName", "spec.dra.driverName: required field is missing"},
        RequiredCase{"/spec/dra/deviceClasses/0/name",
                     "spec.dra.deviceClasses[0].name: required field is missing"}));

TEST(ParseModule, DevicePluginNeedsAContainerOrTheBuiltinPlugin) {
  json object = LoadFixture("full_module.json");
  object["spec"]["devicePlugin"].erase("container");
  object["spec"]["devicePlugin"].erase("builtin");
  EXPECT_THAT(ErrorOf(object), HasSubstr("spec.devicePlugin.container: required field is missing "
                                         "(or set builtin to use kmm's built-in device plugin "
                                         "instead)"));
}

TEST(ParseModule, ModuleWithoutModuleLoaderIsAccepted) {
  // Upstream: a Module may only run a device plugin for an in-tree driver.
  const json object = json::parse(R"({
    "apiVersion": "kmm.sigs.x-k8s.io/v1beta1", "kind": "Module",
    "metadata": {"name": "my-kmod", "namespace": "default"},
    "spec": {
      "selector": {"node-role.kubernetes.io/worker": ""},
      "devicePlugin": {"container": {"image": "some.registry/org/my-device-plugin:latest"}}
    }
  })");
  absl::StatusOr<Module> module = ParseModule(object);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_FALSE(module->spec.module_loader.has_value());
  EXPECT_THAT(ToJson(*module).dump(), Not(HasSubstr("moduleLoader")));
  EXPECT_FALSE(ToJson(*module).contains("status"));
}

TEST(ToJson, StatusAlwaysCarriesTheThreeDaemonSetStatuses) {
  ModuleStatus status;
  status.module_loader.desired_number = 5;
  EXPECT_EQ(ToJson(status), json::parse(R"({"moduleLoader": {"desiredNumber": 5},
                                            "devicePlugin": {}, "dra": {}})"));
}

}  // namespace
}  // namespace kmm::api
