#include "operator/desired/loader_daemonset.h"

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/desired/device_plugin_daemonset.h"
#include "operator/desired/labels.h"
#include "operator/desired/testing/testdata.h"
#include "operator/kube/yaml.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

using testing::ReadTestdata;

api::Module TestModule() {
  absl::StatusOr<json> parsed = kube::ParseYaml(ReadTestdata("module.yaml"), "module.yaml");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<api::Module> module = api::ParseModule(*parsed);
  EXPECT_TRUE(module.ok()) << module.status();
  return *module;
}

OperatorSettings Settings() {
  OperatorSettings settings;
  settings.loader_image = "registry.example/kmm/kmm-loader:v0.1.0";
  return settings;
}

TEST(LoaderDaemonSetTest, IsExactlyTheExpectedObject) {
  const api::Module module = TestModule();
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, "5.15.0-43-generic");
  ASSERT_TRUE(mapping.has_value());
  json built = LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", Settings());
  absl::StatusOr<json> expected =
      kube::ParseYaml(ReadTestdata("loader_daemonset.yaml"), "loader_daemonset.yaml");
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(built, *expected) << "built:\n"
                              << kube::ToYaml(built) << "\ndiff (RFC 6902, expected -> built):\n"
                              << json::diff(*expected, built).dump(2);
}

TEST(LoaderDaemonSetTest, TheLoaderConfigIsWhatKmmLoaderReads) {
  const api::Module module = TestModule();
  std::optional<api::ResolvedMapping> mapping =
      api::FindKernelMapping(module, "5.4.196-108.356.amzn2.x86_64");
  ASSERT_TRUE(mapping.has_value());
  const loader::LoaderConfig config =
      LoaderConfigFor(module, *mapping, "5.4.196-108.356.amzn2.x86_64", Settings());
  EXPECT_EQ(config.dir_name, "/kmm-modules/opt");
  EXPECT_EQ(config.kernel_version, "5.4.196-108.356.amzn2.x86_64");
  EXPECT_EQ(config.module_name, "kmm_ci_b");
  EXPECT_EQ(config.modules_loading_order, (std::vector<std::string>{"kmm_ci_b", "kmm_ci_a"}));
  // This mapping sets no list of its own: the container's applies.
  EXPECT_EQ(config.in_tree_modules_to_remove, std::vector<std::string>{"dummy"});
  EXPECT_EQ(config.firmware_host_path, "/var/lib/firmware");
  ASSERT_TRUE(config.device_plugin.has_value());
  EXPECT_EQ(config.device_plugin->resources.at(0).resource_name, "example.com/kmm-ci-a");
  // The image is the mapping's, substituted.
  EXPECT_EQ(mapping->container_image, "registry.example/kmm/kmm-ci:amzn2-5.4.196");
}

TEST(LoaderDaemonSetTest, ADifferentKernelOrVersionIsADifferentDaemonSet) {
  EXPECT_NE(LoaderDaemonSetName("m", "5.15.0-43-generic"),
            LoaderDaemonSetName("m", "5.15.0-44-generic"));
  EXPECT_NE(LoaderDaemonSetName("m", "5.15.0-43-generic"),
            LoaderDaemonSetName("m", "5.15.0-43-generic", "v2"));
  EXPECT_EQ(LoaderDaemonSetName("m", "k"), LoaderDaemonSetName("m", "k"));
  EXPECT_THAT(LoaderDaemonSetName("kmm-ci-a", "k"),
              ::testing::MatchesRegex("kmm-ci-a-loader-[0-9a-f]{10}"));
}

TEST(LoaderDaemonSetTest, ChangingParametersChangesTheTemplateHash) {
  api::Module module = TestModule();
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, "5.15.0-43-generic");
  json before = LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", Settings());
  module.spec.module_loader->container.modprobe.parameters = {"greeting_count=4"};
  json after = LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", Settings());
  const json::json_pointer hash(
      "/spec/template/metadata/annotations/kmm.sigs.x-k8s.io~1template-hash");
  EXPECT_NE(before[hash], after[hash]);
  EXPECT_EQ(before["metadata"]["name"], after["metadata"]["name"]);  // same DaemonSet, new template
}

TEST(LoaderDaemonSetTest, WithoutFirmwareOrPluginThePodIsNotPrivilegedNorOnTheHostNetwork) {
  api::Module module = TestModule();
  module.spec.module_loader->container.modprobe.firmware_path.clear();
  module.spec.device_plugin.reset();
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, "5.15.0-43-generic");
  json built = LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", Settings());
  const json& pod = built["spec"]["template"]["spec"];
  EXPECT_FALSE(pod.contains("hostNetwork"));
  EXPECT_EQ(pod["initContainers"].size(), 2u);  // no firmware copy
  const json& loader = pod["containers"][0];
  EXPECT_FALSE(loader["securityContext"].contains("privileged"));
  EXPECT_EQ(loader["securityContext"]["capabilities"]["add"], json({"SYS_MODULE"}));
  EXPECT_EQ(std::find(loader["command"].begin(), loader["command"].end(), "--device-plugin-dir"),
            loader["command"].end());
}

TEST(LoaderDaemonSetTest, AModuleVersionSelectsNodesTheOperatorMovedToIt) {
  api::Module module = TestModule();
  module.spec.module_loader->container.version = "v2";
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, "5.15.0-43-generic");
  json built = LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", Settings());
  const json& selector = built["spec"]["template"]["spec"]["nodeSelector"];
  // Not the administrator's label: the operator sets this one once the old version unloaded.
  EXPECT_EQ(selector["beta.kmm.node.kubernetes.io/version-module-loader.kmm-demo.kmm-ci-a"], "v2");
  EXPECT_FALSE(selector.contains("kmm.node.kubernetes.io/version-module.kmm-demo.kmm-ci-a"));
  EXPECT_EQ(built["metadata"]["labels"]["kmm.sigs.x-k8s.io/module-version"], "v2");
  EXPECT_NE(built["metadata"]["name"],
            LoaderDaemonSetFor(TestModule(), *mapping, "5.15.0-43-generic",
                               Settings())["metadata"]["name"]);
}

// The volume and the loader's mount of that name, or nulls.
std::pair<json, json> VolumeAndMount(const json& daemonset, std::string_view name) {
  const json& pod = daemonset["spec"]["template"]["spec"];
  std::pair<json, json> found;
  for (const json& volume : pod["volumes"]) {
    if (volume["name"] == name) found.first = volume;
  }
  for (const json& mount : pod["containers"][0]["volumeMounts"]) {
    if (mount["name"] == name) found.second = mount;
  }
  return found;
}

TEST(LoaderDaemonSetTest, CdiSpecDirectoriesAreMountedFromTheHost) {
  api::Module module = TestModule();
  json& resources = module.spec.device_plugin->builtin["resources"];
  resources[0]["cdi"] = {{"enabled", true}};  // the default specDir, /var/run/cdi
  resources.push_back({{"resourceName", "example.com/kmm-ci-b"},
                       {"match", {{"kernel", "kmm-ci-b*"}}},
                       {"cdi", {{"enabled", true}, {"specDir", "/etc/cdi"}}}});
  resources.push_back({{"resourceName", "example.com/kmm-ci-c"},
                       {"match", {{"kernel", "kmm-ci-c*"}}},
                       {"cdi", {{"enabled", true}, {"specDir", "/etc/cdi"}}}});
  resources.push_back({{"resourceName", "example.com/kmm-ci-d"},  // no CDI: no mount
                       {"match", {{"kernel", "kmm-ci-d*"}}},
                       {"cdi", {{"enabled", false}, {"specDir", "/run/not-cdi"}}}});
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, "5.15.0-43-generic");
  const json built = LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", Settings());

  auto [volume, mount] = VolumeAndMount(built, "cdi-specs");
  EXPECT_EQ(volume,
            json({{"name", "cdi-specs"},
                  {"hostPath", {{"path", "/var/run/cdi"}, {"type", "DirectoryOrCreate"}}}}));
  EXPECT_EQ(mount, json({{"name", "cdi-specs"}, {"mountPath", "/var/run/cdi"}}));  // read-write
  std::tie(volume, mount) = VolumeAndMount(built, "cdi-specs-1");
  EXPECT_EQ(volume["hostPath"], json({{"path", "/etc/cdi"}, {"type", "DirectoryOrCreate"}}));
  EXPECT_EQ(mount, json({{"name", "cdi-specs-1"}, {"mountPath", "/etc/cdi"}}));
  EXPECT_TRUE(VolumeAndMount(built, "cdi-specs-2").first.is_null());  // /etc/cdi once
  const std::string all = built.dump();
  EXPECT_EQ(all.find("\"path\":\"/run/not-cdi\""), std::string::npos);
}

TEST(LoaderDaemonSetTest, WithoutCdiNoSpecDirectoryIsMounted) {
  const api::Module module = TestModule();  // a built-in plugin without cdi
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, "5.15.0-43-generic");
  const json built = LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", Settings());
  EXPECT_TRUE(VolumeAndMount(built, "cdi-specs").first.is_null());
  EXPECT_TRUE(VolumeAndMount(built, "cdi-specs").second.is_null());
}

TEST(LoaderDaemonSetTest, PodsHaveTheOperatorsPriorityClass) {
  api::Module module = TestModule();
  module.spec.device_plugin->container = api::ContainerSpec{};
  module.spec.device_plugin->container->image = "registry.example/kmm/plugin:v1";
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, "5.15.0-43-generic");
  const json::json_pointer priority("/spec/template/spec/priorityClassName");
  auto loader = [&](const OperatorSettings& settings) {
    return LoaderDaemonSetFor(module, *mapping, "5.15.0-43-generic", settings);
  };
  // Unset: the class manifests/priority-class.yaml creates, not a system one.
  OperatorSettings settings = Settings();
  EXPECT_EQ(loader(settings)[priority], "kmm-node-critical");
  EXPECT_EQ(DevicePluginDaemonSetFor(module, settings)[priority], "kmm-node-critical");
  // Set.
  settings.priority_class = "system-node-critical";
  EXPECT_EQ(loader(settings)[priority], "system-node-critical");
  EXPECT_EQ(DevicePluginDaemonSetFor(module, settings)[priority], "system-node-critical");
  // Set to nothing: no class, the cluster's default priority.
  settings.priority_class.clear();
  EXPECT_FALSE(loader(settings).contains(priority));
  EXPECT_FALSE(DevicePluginDaemonSetFor(module, settings).contains(priority));
}

}  // namespace
}  // namespace kmm::desired
