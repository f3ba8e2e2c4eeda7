#include "common/json_fields.h"

#include <gtest/gtest.h>

namespace kmm {
namespace {

using nlohmann::json;

TEST(JsonFields, ReadsPresentFieldsAndKeepsDefaults) {
  const json object = json::parse(
      R"({"name":"kmm_ci_a","count":3,"on":true,"list":["a","b"],"map":{"k":"v"},"gone":null})");
  JsonFields fields(object, "config");
  std::string name, missing = "default", gone = "kept";
  int64_t count = 0;
  bool on = false;
  std::vector<std::string> list;
  std::map<std::string, std::string> map;
  ASSERT_TRUE(fields.Required("name", &name).ok());
  ASSERT_TRUE(fields.Optional("missing", &missing).ok());
  ASSERT_TRUE(fields.Optional("gone", &gone).ok());
  ASSERT_TRUE(fields.Optional("count", &count).ok());
  ASSERT_TRUE(fields.Optional("on", &on).ok());
  ASSERT_TRUE(fields.Optional("list", &list).ok());
  ASSERT_TRUE(fields.Optional("map", &map).ok());
  EXPECT_TRUE(fields.NoUnknownFields().ok());
  EXPECT_EQ(name, "kmm_ci_a");
  EXPECT_EQ(missing, "default");
  EXPECT_EQ(gone, "kept");
  EXPECT_EQ(count, 3);
  EXPECT_TRUE(on);
  EXPECT_EQ(list, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(map.at("k"), "v");
}

TEST(JsonFields, TypeErrorsNameThePathAndTheExpectedType) {
  const json object = json::parse(R"({"name":7,"list":["a",2]})");
  JsonFields fields(object, "config.modprobe");
  std::string name;
  absl::Status status = fields.Optional("name", &name);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "config.modprobe.name: expected a string, got an integer (7)");
  std::vector<std::string> list;
  status = fields.Optional("list", &list);
  EXPECT_EQ(status.message(), "config.modprobe.list[1]: expected a string, got an integer (2)");
}

TEST(JsonFields, MissingRequiredFieldIsNamed) {
  const json object = json::object();
  JsonFields fields(object, "config");
  std::string name;
  EXPECT_EQ(fields.Required("moduleName", &name).message(),
            "config.moduleName: required field is missing");
}

TEST(JsonFields, UnknownFieldsAreListedWithTheAcceptedOnes) {
  const json object = json::parse(R"({"moduleName":"a","modulName":"typo","extra":1})");
  JsonFields fields(object, "config");
  std::string name;
  ASSERT_TRUE(fields.Optional("moduleName", &name).ok());
  const absl::Status status = fields.NoUnknownFields();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "unknown fields config.extra, config.modulName; the fields config accepts are: "
            "moduleName");
}

TEST(JsonFields, NonObjectIsAnError) {
  const json array = json::array();
  JsonFields fields(array, "config");
  std::string name;
  EXPECT_EQ(fields.Optional("x", &name).message(), "config: expected an object, got an array");
}

TEST(ParseJson, NamesTheSource) {
  const auto parsed = ParseJson("{not json", "/etc/kmm/loader.json");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message().substr(0, 36), "/etc/kmm/loader.json: not valid JSON");
}

}  // namespace
}  // namespace kmm
