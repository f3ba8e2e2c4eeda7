#include "loader/config.h"

#include <gtest/gtest.h>

#include <string>

namespace kmm::loader {
namespace {

absl::StatusOr<LoaderConfig> Parse(const std::string& json) {
  return ParseLoaderConfig(json, "loader.json");
}

std::string ErrorOf(const std::string& json) {
  absl::StatusOr<LoaderConfig> config = Parse(json);
  EXPECT_FALSE(config.ok()) << json;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  return std::string(config.status().message());
}

TEST(ParseLoaderConfig, ReadsEveryField) {
  absl::StatusOr<LoaderConfig> config = Parse(R"({
    "moduleName": "kmm_ci_b",
    "dirName": "/modules",
    "parameters": ["greeting_count=3"],
    "args": {"load": ["-v"], "unload": ["-v"]},
    "firmwarePath": "/firmware",
    "modulesLoadingOrder": ["kmm_ci_b", "kmm_ci_a"],
    "inTreeModulesToRemove": ["dummy"],
    "kernelVersion": "6.1.0-56-amd64",
    "firmwareHostPath": "/var/lib/firmware",
    "readinessFile": "/run/kmm/ready",
    "terminationMessagePath": "/tmp/termination",
    "devicePlugin": {"resources": [{"resourceName": "example.com/kmm-ci-a",
                                    "match": {"kernel": "kmm-ci-a*"}}]}
  })");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->module_name, "kmm_ci_b");
  EXPECT_EQ(config->dir_name, "/modules");
  EXPECT_EQ(config->parameters, std::vector<std::string>{"greeting_count=3"});
  ASSERT_TRUE(config->args.has_value());
  EXPECT_EQ(config->args->load, std::vector<std::string>{"-v"});
  EXPECT_FALSE(config->raw_args.has_value());
  EXPECT_EQ(config->firmware_path, "/firmware");
  EXPECT_EQ(config->modules_loading_order, (std::vector<std::string>{"kmm_ci_b", "kmm_ci_a"}));
  EXPECT_EQ(config->in_tree_modules_to_remove, std::vector<std::string>{"dummy"});
  EXPECT_EQ(config->kernel_version, "6.1.0-56-amd64");
  EXPECT_EQ(config->firmware_host_path, "/var/lib/firmware");
  EXPECT_EQ(config->readiness_file, "/run/kmm/ready");
  EXPECT_EQ(config->termination_message_path, "/tmp/termination");
  ASSERT_TRUE(config->device_plugin.has_value());
  EXPECT_EQ(config->device_plugin->resources.at(0).resource_name, "example.com/kmm-ci-a");
}

TEST(ParseLoaderConfig, AppliesUpstreamDefaults) {
  absl::StatusOr<LoaderConfig> config = Parse(R"({"moduleName": "kmm_ci_a"})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->dir_name, "/opt");
  EXPECT_EQ(config->firmware_host_path, "/lib/firmware");
  EXPECT_EQ(config->termination_message_path, "/dev/termination-log");
  EXPECT_TRUE(config->kernel_version.empty());
  EXPECT_FALSE(config->device_plugin.has_value());
  // An empty dirName means the default, as upstream's CRD default does.
  EXPECT_EQ(Parse(R"({"moduleName": "a", "dirName": ""})")->dir_name, "/opt");
}

TEST(ParseLoaderConfig, RejectsUnknownFieldsByName) {
  const std::string error = ErrorOf(R"({"moduleName": "a", "modulesLoadOrder": ["a", "b"]})");
  EXPECT_NE(error.find("loader.json"), std::string::npos) << error;
  EXPECT_NE(error.find("unknown field config.modulesLoadOrder"), std::string::npos) << error;
  EXPECT_NE(error.find("modulesLoadingOrder"), std::string::npos) << "lists the accepted ones";
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "args": {"load": ["-v"], "remove": []}})")
                .find("config.args.remove"),
            std::string::npos);
}

TEST(ParseLoaderConfig, RejectsWrongTypesByPath) {
  EXPECT_NE(ErrorOf(R"({"moduleName": 3})").find("config.moduleName: expected a string"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "parameters": "x=1"})")
                .find("config.parameters: expected an array of strings"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "rawArgs": ["-v"]})").find("config.rawArgs"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "devicePlugin": []})").find("config.devicePlugin"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[1, 2]").find("expected an object"), std::string::npos);
  EXPECT_NE(ErrorOf("{oops").find("not valid JSON"), std::string::npos);
}

TEST(ParseLoaderConfig, DevicePluginErrorsNameTheirPath) {
  const std::string error = ErrorOf(
      R"({"moduleName": "a", "devicePlugin": {"resources": [{"resourceName": "kmm-ci-a",
                                                            "match": {"kernel": "x"}}]}})");
  EXPECT_NE(error.find("config.devicePlugin.resources[0].resourceName"), std::string::npos)
      << error;
  EXPECT_NE(error.find("loader.json"), std::string::npos) << error;
}

TEST(ParseLoaderConfig, ModuleNameOrRawArgs) {
  EXPECT_NE(ErrorOf("{}").find("config.moduleName is missing"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"rawArgs": {"load": ["a"]}})").find("config.rawArgs.unload"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "rawArgs": {"load": ["a"], "unload": ["-r", "a"]}})")
                .find("cannot be set together"),
            std::string::npos);
  EXPECT_TRUE(Parse(R"({"rawArgs": {"load": ["a"], "unload": ["-r", "a"]}})").ok());
}

TEST(ParseLoaderConfig, ModulesLoadingOrderFollowsUpstreamRules) {
  EXPECT_NE(
      ErrorOf(R"({"moduleName": "a", "modulesLoadingOrder": ["a"]})").find("at least two modules"),
      std::string::npos);
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "modulesLoadingOrder": ["b", "a"]})")
                .find("config.modulesLoadingOrder[0]: is \"b\" but must be config.moduleName"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "modulesLoadingOrder": ["a", "b", "b"]})")
                .find("config.modulesLoadingOrder[2]: \"b\" is listed twice"),
            std::string::npos);
}

TEST(ParseLoaderConfig, RejectsBadParametersAndDirName) {
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "parameters": ["-v"]})")
                .find("config.parameters[0]: \"-v\" is not a module parameter"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"moduleName": "a", "dirName": "opt"})")
                .find("config.dirName: \"opt\" must be an absolute path"),
            std::string::npos);
}

// A config with every field away from its default, the device plugin's too.
LoaderConfig RichConfig() {
  LoaderConfig config;
  config.module_name = "kmm_ci_b";
  config.dir_name = "/kmm-modules/opt";
  config.parameters = {"greeting_count=3", "name=x y"};
  config.args = ModprobeArgs{{"-v", "-d", "/kmm-modules/opt"}, {"--first-time"}};
  config.firmware_path = "/firmware";
  config.modules_loading_order = {"kmm_ci_b", "kmm_ci_a"};
  config.in_tree_modules_to_remove = {"dummy", "kmm_old"};
  config.kernel_version = "6.1.0-56-amd64";
  config.firmware_host_path = "/var/lib/firmware";
  config.readiness_file = "/run/kmm/ready";
  config.termination_message_path = "/tmp/termination";
  deviceplugin::ResourceConfig resource;
  resource.resource_name = "example.com/kmm-ci-a";
  resource.match = {"misc", "kmm_ci_a", "kmm-ci-a*", "/dev/kmm-ci-a*", {{"ID", "1"}}, {{"a", "b"}}};
  resource.container_path = "/dev/kmm/{name}";
  resource.permissions = "rwm";
  resource.mounts = {{"/opt/lib", "/var/lib/kmm", false}, {"/etc/kmm", "/etc/kmm", true}};
  resource.envs = {{"KMM_DEVICE", "{name}"}};
  resource.replicas = 4;
  resource.health = {"health", "ok"};
  resource.cdi = {true, "/etc/cdi"};
  deviceplugin::ResourceConfig plain;
  plain.resource_name = "example.com/kmm-ci-b";
  plain.match.kernel = "kmm-ci-b*";
  config.device_plugin = deviceplugin::DevicePluginConfig{{resource, plain}, "kernel"};
  return config;
}

void ExpectRoundTrip(const LoaderConfig& config) {
  const std::string text = SerializeLoaderConfig(config).dump();
  absl::StatusOr<LoaderConfig> parsed = Parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(*parsed, config) << text;
}

TEST(SerializeLoaderConfig, ParsesBackAsTheSameConfig) {
  ExpectRoundTrip(RichConfig());

  LoaderConfig raw;  // rawArgs instead of moduleName, everything else at its default
  raw.raw_args = ModprobeArgs{{"-d", "/kmm-modules/opt", "kmm_ci_b"}, {"-r", "kmm_ci_b"}};
  ExpectRoundTrip(raw);

  LoaderConfig empty_args = RichConfig();  // present but empty: still present
  empty_args.args = ModprobeArgs{};
  empty_args.device_plugin->resources[0].cdi = {false, "/var/run/cdi/kmm"};
  empty_args.device_plugin->resources[0].health = {};
  ExpectRoundTrip(empty_args);
}

TEST(SerializeLoaderConfig, LeavesOutWhatIsAtItsDefault) {
  LoaderConfig config;
  config.module_name = "kmm_ci_a";
  EXPECT_EQ(SerializeLoaderConfig(config), nlohmann::json({{"moduleName", "kmm_ci_a"}}));
}

}  // namespace
}  // namespace kmm::loader
