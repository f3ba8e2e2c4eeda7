#include "deviceplugin/config.h"

#include <gtest/gtest.h>

namespace kmm::deviceplugin {
namespace {

absl::StatusOr<DevicePluginConfig> Parse(const std::string& text) {
  return ParseDevicePluginConfig(nlohmann::json::parse(text), "devicePlugin");
}

std::string ErrorOf(const std::string& text) {
  absl::StatusOr<DevicePluginConfig> config = Parse(text);
  EXPECT_FALSE(config.ok()) << text;
  return std::string(config.status().message());
}

TEST(ParseDevicePluginConfig, ReadsAResourceWithEveryField) {
  absl::StatusOr<DevicePluginConfig> config = Parse(R"({
    "ueventSource": "kernel",
    "resources": [{
      "resourceName": "example.com/kmm-ci-a",
      "match": {"subsystem": "misc", "driver": "d", "kernel": "kmm-ci-a*",
                "devnode": "/dev/kmm-ci-a*", "properties": {"P": "1"},
                "attributes": {"a": "b"}},
      "containerPath": "/dev/{name}",
      "permissions": "rwm",
      "mounts": [{"containerPath": "/etc/x", "hostPath": "/var/x", "readOnly": false}],
      "envs": {"KMM": "1"},
      "sharing": {"replicas": 4},
      "health": {"attribute": "health", "healthyValue": "ok"},
      "cdi": {"enabled": true, "specDir": "/etc/cdi"}
    }]})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->uevent_source, "kernel");
  ASSERT_EQ(config->resources.size(), 1u);
  const ResourceConfig& r = config->resources[0];
  EXPECT_EQ(r.resource_name, "example.com/kmm-ci-a");
  EXPECT_EQ(r.match.subsystem, "misc");
  EXPECT_EQ(r.match.kernel, "kmm-ci-a*");
  EXPECT_EQ(r.match.properties.at("P"), "1");
  EXPECT_EQ(r.container_path, "/dev/{name}");
  EXPECT_EQ(r.permissions, "rwm");
  ASSERT_EQ(r.mounts.size(), 1u);
  EXPECT_FALSE(r.mounts[0].read_only);
  EXPECT_EQ(r.envs.at("KMM"), "1");
  EXPECT_EQ(r.replicas, 4);
  EXPECT_EQ(r.health.attribute, "health");
  EXPECT_EQ(r.health.healthy_value, "ok");
  EXPECT_TRUE(r.cdi.enabled);
  EXPECT_EQ(r.cdi.spec_dir, "/etc/cdi");
}

TEST(ParseDevicePluginConfig, Defaults) {
  absl::StatusOr<DevicePluginConfig> config =
      Parse(R"({"resources":[{"resourceName":"example.com/a","match":{"subsystem":"misc"}}]})");
  ASSERT_TRUE(config.ok()) << config.status();
  const ResourceConfig& r = config->resources[0];
  EXPECT_EQ(config->uevent_source, "auto");
  EXPECT_EQ(r.container_path, "{devnode}");
  EXPECT_EQ(r.permissions, "rw");
  EXPECT_EQ(r.replicas, 1);
  EXPECT_TRUE(r.health.attribute.empty());
  EXPECT_FALSE(r.cdi.enabled);
  EXPECT_EQ(r.cdi.spec_dir, "/var/run/cdi");
}

TEST(ParseDevicePluginConfig, ErrorsNameTheFieldAndTheFix) {
  EXPECT_EQ(ErrorOf(R"({"resources":[]})"),
            "devicePlugin.resources: lists no resource; add one with a resourceName and a match");
  EXPECT_EQ(ErrorOf(R"({"resources":[{"resourceName":"kmm-ci-a","match":{"subsystem":"m"}}]})"),
            "devicePlugin.resources[0].resourceName: \"kmm-ci-a\" has no domain; use a name like "
            "\"example.com/kmm-ci-a\"");
  EXPECT_NE(
      ErrorOf(R"({"resources":[{"resourceName":"kubernetes.io/gpu","match":{"kernel":"g"}}]})")
          .find("reserves"),
      std::string::npos);
  EXPECT_NE(
      ErrorOf(R"({"resources":[{"resourceName":"a.kubernetes.io/gpu","match":{"kernel":"g"}}]})")
          .find("kubernetes.io domain"),
      std::string::npos);
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"Example.com/x","match":{"kernel":"g"}}]})")
                .find("not a valid extended resource name"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(R"({"resources":[{"resourceName":"example.com/a"}]})"),
            "devicePlugin.resources[0].match: required field is missing");
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"example.com/a","match":{}}]})")
                .find("matches every device"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"example.com/a","match":{"kernal":"x"}}]})")
                .find("unknown field devicePlugin.resources[0].match.kernal"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"example.com/a","match":{"kernel":"x"},
                        "permissions":"rx"}]})")
                .find("devicePlugin.resources[0].permissions: \"rx\" is not a device permission"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"example.com/a","match":{"kernel":"x"},
                        "sharing":{"replicas":0}}]})")
                .find("devicePlugin.resources[0].sharing.replicas: 0 is out of range"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"example.com/a","match":{"kernel":"x"},
                        "health":{"attribute":"../x"}}]})")
                .find("health.attribute"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"example.com/a","match":{"kernel":"x"},
                        "cdi":{"enabled":true,"specDir":"cdi"}}]})")
                .find("cdi.specDir: must be an absolute directory"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"resources":[{"resourceName":"example.com/a","match":{"kernel":"x"}},
                                     {"resourceName":"example.com/a","match":{"kernel":"y"}}]})")
                .find("devicePlugin.resources[1].resourceName: \"example.com/a\" is listed twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"ueventSource":"netlink","resources":[{"resourceName":"example.com/a",
                        "match":{"kernel":"x"}}]})")
                .find("ueventSource"),
            std::string::npos);
}

}  // namespace
}  // namespace kmm::deviceplugin
