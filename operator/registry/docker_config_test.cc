#include "operator/registry/docker_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kmm::registry {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

Credentials User(std::string name, std::string password) {
  Credentials credentials;
  credentials.username = std::move(name);
  credentials.password = std::move(password);
  return credentials;
}

TEST(DockerConfigTest, FindsCredentialsAsTheKubeletMatchesThem) {
  // auth is base64("alice:pw1"), ("bob:pw2") as `kubectl create secret docker-registry` writes.
  absl::StatusOr<DockerConfig> config = DockerConfig::Parse(R"({"auths": {
      "https://index.docker.io/v1/": {"auth": "YWxpY2U6cHcx"},
      "registry.example:5000": {"username": "carol", "password": "pw3"},
      "https://registry.example:5000/team": {"auth": "Ym9iOnB3Mg=="},
      "Quay.IO": {"registrytoken": "opaque"}
    }})",
                                                            "Secret ns/pull");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->Find("docker.io", "library/busybox"), Optional(User("alice", "pw1")));
  EXPECT_THAT(config->Find("registry.example:5000", "other/driver"),
              Optional(User("carol", "pw3")));
  // The longest matching path wins, at a '/' boundary only.
  EXPECT_THAT(config->Find("registry.example:5000", "team/driver"), Optional(User("bob", "pw2")));
  EXPECT_THAT(config->Find("registry.example:5000", "team"), Optional(User("bob", "pw2")));
  EXPECT_THAT(config->Find("registry.example:5000", "teammate/driver"),
              Optional(User("carol", "pw3")));
  EXPECT_EQ(config->Find("quay.io", "a/b")->registry_token, "opaque");
  EXPECT_EQ(config->Find("registry.example", "team/driver"), std::nullopt) << "the port counts";
  EXPECT_EQ(config->Find("ghcr.io", "a/b"), std::nullopt);
}

TEST(DockerConfigTest, ReadsTheOlderDockercfgFormToo) {
  absl::StatusOr<DockerConfig> config =
      DockerConfig::Parse(R"({"registry.example": {"auth": "YWxpY2U6cHcx"}})", "Secret ns/old");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->Find("registry.example", "a"), Optional(User("alice", "pw1")));
}

TEST(DockerConfigTest, ErrorsNameTheSecretAndTheEntry) {
  struct Bad {
    std::string json, message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"not json", "Secret ns/pull: .dockerconfigjson is not a JSON object"},
           {R"({"auths": []})", "Secret ns/pull: \"auths\" is not an object"},
           {R"({"auths": {"r.example": "x"}})", "auths[\"r.example\"] is not an object"},
           {R"({"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}})",
            "auths[\"r.example\"].auth is not base64 of USERNAME:PASSWORD"},
           {R"({"auths": {"r.example": {"username": 7}}})",
            "auths[\"r.example\"].username is not a string"},
       }) {
    absl::StatusOr<DockerConfig> config = DockerConfig::Parse(bad.json, "Secret ns/pull");
    ASSERT_FALSE(config.ok()) << bad.json;
    EXPECT_THAT(config.status().message(), HasSubstr(bad.message)) << bad.json;
  }
}

}  // namespace
}  // namespace kmm::registry
