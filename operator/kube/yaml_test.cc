#include "operator/kube/yaml.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::kube {
namespace {

using ::testing::HasSubstr;

TEST(YamlTest, TypesPlainScalarsLikeKubernetesAndKeepsQuotedOnesStrings) {
  absl::StatusOr<nlohmann::json> parsed = ParseYaml(R"(
name: demo
replicas: 3
ratio: 0.5
enabled: true
nothing: null
tilde: ~
quoted: "true"
version: '1.0'
kernel: 5.15.0-43-generic
list: [a, 2]
)", "test.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, nlohmann::json::parse(R"({"name":"demo","replicas":3,"ratio":0.5,
    "enabled":true,"nothing":null,"tilde":null,"quoted":"true","version":"1.0",
    "kernel":"5.15.0-43-generic","list":["a",2]})"));
}

TEST(YamlTest, ReadsJsonToo) {
  absl::StatusOr<nlohmann::json> parsed = ParseYaml(R"({"a": {"b": [1, "x"]}})", "j");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)["a"]["b"][1], "x");
}

TEST(YamlTest, ErrorNamesTheSourceAndLine) {
  absl::StatusOr<nlohmann::json> parsed = ParseYaml("a: b\nc: [unclosed\n", "module.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("module.yaml"));
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("line"));
}

TEST(YamlTest, SplitsDocumentsAndSkipsEmptyOnes) {
  absl::StatusOr<std::vector<nlohmann::json>> documents =
      ParseYamlDocuments("a: 1\n---\n---\nb: 2\n", "s");
  ASSERT_TRUE(documents.ok());
  ASSERT_EQ(documents->size(), 2u);
  EXPECT_EQ((*documents)[1]["b"], 2);
}

TEST(YamlTest, EmitsYamlThatReadsBackAsTheSameJson) {
  nlohmann::json value = nlohmann::json::parse(R"({"kind":"List","items":[{"a":"true",
    "b":true,"c":"1.5","d":7,"e":"","f":null,"g":{},"h":[],"i":"plain text","j":"x: y"}]})");
  std::string text = ToYaml(value);
  absl::StatusOr<nlohmann::json> back = ParseYaml(text, "emitted");
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  EXPECT_EQ(*back, value) << text;
}

}  // namespace
}  // namespace kmm::kube
