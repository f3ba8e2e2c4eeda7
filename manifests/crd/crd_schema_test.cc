// Checks the Module CRD (manifests/crd/modules.kmm.sigs.x-k8s.io.yaml) without a cluster: it
// serves v1beta1 with the status subresource, its schema is structural, it keeps upstream's
// required fields and defaults, and it describes every field of the Module fixtures that
// operator/api parses — so the API server neither rejects nor prunes what the operator reads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "operator/api/module.h"
#include "operator/api/validation.h"
#include "operator/kube/yaml.h"

namespace kmm {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAreArray;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

const json& Crd() {
  static const json* const crd = [] {
    absl::StatusOr<json> parsed = kube::ParseYaml(ReadFile(KMM_CRD_FILE), KMM_CRD_FILE);
    if (!parsed.ok()) {
      ADD_FAILURE() << parsed.status();
      return new json(json::object());
    }
    return new json(*std::move(parsed));
  }();
  return *crd;
}

const json& ModuleSchema() {
  static const json* const schema = [] {
    const json found =
        Crd().value(json::json_pointer("/spec/versions/0/schema/openAPIV3Schema"), json::object());
    return new json(found);
  }();
  return *schema;
}

// The schema node at a dotted path, "[]" stepping into array items:
// "spec.moduleLoader.container.kernelMappings[].build". Null when there is none.
const json* SchemaAt(std::string_view path) {
  const json* node = &ModuleSchema();
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find_first_of(".[", start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    if (end > start) {
      const std::string name(path.substr(start, end - start));
      auto properties = node->find("properties");
      if (properties == node->end() || !properties->contains(name)) {
        return nullptr;
      }
      node = &(*properties)[name];
    }
    if (end < path.size() && path[end] == '[') {
      auto items = node->find("items");
      if (items == node->end()) {
        return nullptr;
      }
      node = &*items;
      end += 2;  // "[]"
    }
    start = end + 1;
  }
  return node;
}

// The "properties" of a schema node; an empty object when it has none. (A reference, so range-for
// over its items() never iterates a destroyed temporary.)
const json& PropertiesOf(const json& schema) {
  static const json* const kNone = new json(json::object());
  auto properties = schema.find("properties");
  return properties == schema.end() ? *kNone : *properties;
}

bool PreservesUnknownFields(const json& schema) {
  return schema.value("x-kubernetes-preserve-unknown-fields", false);
}

// `path`.`name`, or `name` at the root.
std::string FieldPath(std::string_view path, std::string_view name) {
  return path.empty() ? std::string(name) : fmt::format("{}.{}", path, name);
}

// Whether `value` is a JSON value of OpenAPI type `type`.
bool HasType(const json& value, std::string_view type) {
  if (type == "string") {
    return value.is_string();
  }
  if (type == "integer") {
    return value.is_number_integer();
  }
  if (type == "number") {
    return value.is_number();
  }
  if (type == "boolean") {
    return value.is_boolean();
  }
  if (type == "array") {
    return value.is_array();
  }
  if (type == "object") {
    return value.is_object();
  }
  return false;
}

// --- structural schema ------------------------------------------------------------------

// The keywords this CRD uses. Anything else (a typo, or anyOf/allOf/oneOf/not, whose structural
// rules are subtler) must be added here deliberately.
constexpr std::string_view kKnownKeywords[] = {
    "type",
    "description",
    "properties",
    "items",
    "additionalProperties",
    "required",
    "default",
    "enum",
    "format",
    "pattern",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "maxProperties",
    "minimum",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-map-type",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
};

constexpr std::string_view kTypes[] = {"object", "array", "string", "integer", "number", "boolean"};

bool OneOf(std::string_view value, std::span<const std::string_view> values) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// Appends to `problems` every way `node` (at `path`) breaks Kubernetes' structural schema rules
// or this CRD's conventions: every field described in one line, `required` naming declared
// fields, defaults and enum values of the node's type.
void CheckStructural(const json& node, const std::string& path, bool is_field,
                     std::vector<std::string>* problems) {
  if (!node.is_object()) {
    problems->push_back(path + ": schema is not an object");
    return;
  }
  for (const auto& [keyword, value] : node.items()) {
    if (!OneOf(keyword, kKnownKeywords)) {
      problems->push_back(fmt::format("{}: unexpected keyword {}", path, keyword));
    }
  }
  const std::string type = node.value("type", "");
  if (type.empty()) {
    if (!PreservesUnknownFields(node) && !node.value("x-kubernetes-int-or-string", false)) {
      problems->push_back(path + ": no type");
    }
  } else if (!OneOf(type, kTypes)) {
    problems->push_back(fmt::format("{}: unknown type {}", path, type));
  }
  if (is_field) {
    const std::string description = node.value("description", "");
    if (description.empty()) {
      problems->push_back(path + ": no description");
    }
    if (description.find('\n') != std::string::npos) {
      problems->push_back(path + ": description is more than one line");
    }
  }
  if (node.contains("default") && !type.empty() && !HasType(node["default"], type)) {
    problems->push_back(fmt::format("{}: default is not a {}", path, type));
  }
  for (const json& value : node.value("enum", json::array())) {
    if (!type.empty() && !HasType(value, type)) {
      problems->push_back(fmt::format("{}: enum value {} is not a {}", path, value.dump(), type));
    }
  }

  if (type == "array") {
    if (!node.contains("items")) {
      problems->push_back(path + ": array without items");
    }
  } else if (node.contains("items")) {
    problems->push_back(path + ": items on a non-array");
  }
  if (node.contains("items")) {
    CheckStructural(node["items"], path + "[]", /*is_field=*/false, problems);
  }
  if ((node.contains("properties") || node.contains("additionalProperties")) && type != "object") {
    problems->push_back(path + ": properties on a non-object");
  }
  if (node.contains("properties") && node.contains("additionalProperties")) {
    problems->push_back(path + ": both properties and additionalProperties");
  }
  const json& properties = PropertiesOf(node);
  for (const auto& [name, child] : properties.items()) {
    CheckStructural(child, FieldPath(path, name), /*is_field=*/true, problems);
  }
  if (node.contains("additionalProperties")) {
    CheckStructural(node["additionalProperties"], path + ".*", /*is_field=*/false, problems);
  }
  for (const json& name : node.value("required", json::array())) {
    if (!name.is_string() || !properties.contains(name.get<std::string>())) {
      problems->push_back(
          fmt::format("{}: required {} is not a declared property", path, name.dump()));
    }
  }
  if (node.value("x-kubernetes-list-type", "") == "map") {
    const json item_required = node.value("items", json::object()).value("required", json::array());
    for (const json& key : node.value("x-kubernetes-list-map-keys", json::array())) {
      if (std::find(item_required.begin(), item_required.end(), key) == item_required.end()) {
        problems->push_back(fmt::format("{}: list map key {} is not required", path, key.dump()));
      }
    }
  }
}

// --- fixtures against the schema --------------------------------------------------------

// Appends every field of `value` that `schema` does not describe, or describes with another
// type or enum. With `check_required`, also every required field `value` lacks.
void CheckValue(const json& value, const json& schema, const std::string& path, bool check_required,
                std::vector<std::string>* problems) {
  const std::string type = schema.value("type", "");
  if (type.empty()) {
    return;  // preserve-unknown-fields without a type: anything goes.
  }
  if (!HasType(value, type)) {
    problems->push_back(fmt::format("{}: {} is not a {}", path, value.dump(), type));
    return;
  }
  if (schema.contains("enum")) {
    const json& values = schema["enum"];
    if (std::find(values.begin(), values.end(), value) == values.end()) {
      problems->push_back(
          fmt::format("{}: {} is not in the enum {}", path, value.dump(), values.dump()));
    }
  }
  if (type == "array") {
    for (size_t i = 0; i < value.size(); ++i) {
      CheckValue(value[i], schema["items"], fmt::format("{}[{}]", path, i), check_required,
                 problems);
    }
    return;
  }
  if (type != "object") {
    return;
  }
  const json& properties = PropertiesOf(schema);
  for (const auto& [name, child] : value.items()) {
    const std::string child_path = FieldPath(path, name);
    if (properties.contains(name)) {
      CheckValue(child, properties[name], child_path, check_required, problems);
    } else if (schema.contains("additionalProperties")) {
      CheckValue(child, schema["additionalProperties"], child_path, check_required, problems);
    } else if (!PreservesUnknownFields(schema)) {
      problems->push_back(child_path + ": not in the schema (the API server would prune it)");
    }
  }
  if (check_required) {
    for (const json& name : schema.value("required", json::array())) {
      if (!value.contains(name.get<std::string>())) {
        problems->push_back(
            fmt::format("{}: required but missing", FieldPath(path, name.get<std::string>())));
      }
    }
  }
}

std::vector<std::filesystem::path> Fixtures() {
  std::vector<std::filesystem::path> fixtures;
  for (const char* dir : {KMM_API_TESTDATA, KMM_CRD_TESTDATA}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() == ".json") {
        fixtures.push_back(entry.path());
      }
    }
  }
  std::sort(fixtures.begin(), fixtures.end());
  return fixtures;
}

// A value for every field `schema` declares: the first enum value, or a placeholder of the
// declared type; objects get all their properties, maps and arrays one entry.
json SampleOf(const json& schema) {
  if (schema.contains("enum")) {
    return schema["enum"][0];
  }
  const std::string type = schema.value("type", "");
  if (type == "string") {
    return "sample";
  }
  if (type == "integer") {
    return 1;
  }
  if (type == "number") {
    return 1.5;
  }
  if (type == "boolean") {
    return true;
  }
  if (type == "array") {
    return json::array({SampleOf(schema["items"])});
  }
  json object = json::object();
  for (const auto& [name, child] : PropertiesOf(schema).items()) {
    object[name] = SampleOf(child);
  }
  if (schema.contains("additionalProperties")) {
    object["sample"] = SampleOf(schema["additionalProperties"]);
  }
  return object;
}

// Every path in the schema whose last field is `name`, "[]" marking array items.
void FindFields(const json& node, const std::string& path, std::string_view name,
                std::vector<std::string>* found) {
  for (const auto& [child_name, child] : PropertiesOf(node).items()) {
    const std::string child_path = FieldPath(path, child_name);
    if (child_name == name) {
      found->push_back(child_path);
    }
    FindFields(child, child_path, name, found);
  }
  if (node.contains("items")) {
    FindFields(node["items"], path + "[]", name, found);
  }
}

// --- tests ------------------------------------------------------------------------------

TEST(ModuleCrd, ServesV1beta1AsStorageWithTheStatusSubresource) {
  const json& crd = Crd();
  EXPECT_EQ(crd.value("apiVersion", ""), "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd.value("kind", ""), "CustomResourceDefinition");
  EXPECT_EQ(crd["metadata"].value("name", ""), "modules.kmm.sigs.x-k8s.io");
  const json& spec = crd["spec"];
  EXPECT_EQ(spec.value("group", ""), api::kGroup);
  EXPECT_EQ(spec.value("scope", ""), "Namespaced");
  EXPECT_EQ(spec["names"].value("kind", ""), api::kKind);
  EXPECT_EQ(spec["names"].value("listKind", ""), "ModuleList");
  EXPECT_EQ(spec["names"].value("plural", ""), "modules");
  EXPECT_EQ(spec["names"].value("singular", ""), "module");

  ASSERT_EQ(spec["versions"].size(), 1u);
  const json& version = spec["versions"][0];
  EXPECT_EQ(fmt::format("{}/{}", api::kGroup, version.value("name", "")), api::kApiVersion);
  EXPECT_EQ(version.value("name", ""), "v1beta1");
  EXPECT_TRUE(version.value("served", false));
  EXPECT_TRUE(version.value("storage", false));
  EXPECT_EQ(version["subresources"], json::parse(R"({"status": {}})"));
}

TEST(ModuleCrd, SchemaIsStructural) {
  const json& root = ModuleSchema();
  ASSERT_TRUE(root.is_object()) << "no openAPIV3Schema";
  EXPECT_EQ(root.value("type", ""), "object");
  // The API server owns ObjectMeta's schema; a CRD may only say it is an object.
  EXPECT_EQ(root["properties"]["metadata"], json::parse(R"({"type": "object"})"));

  std::vector<std::string> problems;
  json without_metadata = root;
  without_metadata["properties"].erase("metadata");
  CheckStructural(without_metadata, "", /*is_field=*/false, &problems);
  EXPECT_THAT(problems, IsEmpty());
}

TEST(ModuleCrd, DescribesEveryFieldOfEveryFixtureWithItsType) {
  const std::vector<std::filesystem::path> fixtures = Fixtures();
  ASSERT_GE(fixtures.size(), 4u) << "expected operator/api's and manifests/crd's fixtures";
  for (const std::filesystem::path& fixture : fixtures) {
    SCOPED_TRACE(fixture.string());
    const json module = json::parse(ReadFile(fixture));
    // The fixtures are Modules ParseModule accepts: schema and parser agree on them.
    ASSERT_TRUE(api::ParseModule(module).ok()) << api::ParseModule(module).status();

    std::vector<std::string> problems;
    json checked = module;
    checked.erase("metadata");  // validated by the API server itself
    // Status is never validated at create (the status subresource ignores it), and fixtures
    // abbreviate its conditions; types and field names still must match.
    json status = checked.value("status", json());
    checked.erase("status");
    CheckValue(checked, ModuleSchema(), "", /*check_required=*/true, &problems);
    if (!status.is_null()) {
      CheckValue(status, ModuleSchema()["properties"]["status"], "status",
                 /*check_required=*/false, &problems);
    }
    EXPECT_THAT(problems, IsEmpty());
  }
}

TEST(ModuleCrd, AModuleWithEveryDeclaredFieldParses) {
  // The other direction: nothing the schema admits is a field ParseModule rejects.
  json module = SampleOf(ModuleSchema());
  module["apiVersion"] = api::kApiVersion;
  module["kind"] = api::kKind;
  module["metadata"] = {{"name", "sample"}, {"namespace", "sample"}};
  absl::StatusOr<api::Module> parsed = api::ParseModule(module);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
}

TEST(ModuleCrd, KeepsUpstreamRequiredFields) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"spec", {"selector"}},
      {"spec.moduleLoader", {"container"}},
      {"spec.moduleLoader.container", {"kernelMappings", "modprobe"}},
      {"spec.moduleLoader.container.build", {"dockerfileConfigMap"}},
      {"spec.moduleLoader.container.build.buildArgs[]", {"name", "value"}},
      {"spec.moduleLoader.container.sign", {"certSecret", "keySecret"}},
      {"spec.moduleLoader.container.kernelMappings[].build", {"dockerfileConfigMap"}},
      {"spec.moduleLoader.container.kernelMappings[].build.buildArgs[]", {"name", "value"}},
      {"spec.moduleLoader.container.kernelMappings[].sign", {"certSecret", "keySecret"}},
      {"spec.devicePlugin.container", {"image"}},
      {"spec.devicePlugin.initContainer", {"image"}},
      {"spec.dra", {"container", "driverName"}},
      {"spec.dra.container", {"image"}},
      {"spec.dra.initContainer", {"image"}},
      {"spec.dra.deviceClasses[]", {"name"}},
  };
  for (const auto& [path, required] : expected) {
    SCOPED_TRACE(path);
    const json* node = SchemaAt(path);
    ASSERT_NE(node, nullptr);
    EXPECT_THAT(node->value("required", std::vector<std::string>{}),
                UnorderedElementsAreArray(required));
  }
  const json* mappings = SchemaAt("spec.moduleLoader.container.kernelMappings");
  ASSERT_NE(mappings, nullptr);
  EXPECT_EQ(mappings->value("minItems", 0), 1);
}

TEST(ModuleCrd, DevicePluginContainerIsOptionalSoBuiltinCanReplaceIt) {
  const json* plugin = SchemaAt("spec.devicePlugin");
  ASSERT_NE(plugin, nullptr);
  EXPECT_THAT(plugin->value("required", std::vector<std::string>{}), Not(Contains("container")));
  const json* builtin = SchemaAt("spec.devicePlugin.builtin");
  ASSERT_NE(builtin, nullptr);
  EXPECT_EQ(builtin->value("type", ""), "object");
  EXPECT_TRUE(PreservesUnknownFields(*builtin));
}

TEST(ModuleCrd, DirNameDefaultsLikeUpstream) {
  const json* dir_name = SchemaAt("spec.moduleLoader.container.modprobe.dirName");
  ASSERT_NE(dir_name, nullptr);
  EXPECT_EQ(dir_name->value("default", ""), api::kDefaultDirName);
}

TEST(ModuleCrd, EveryImagePullPolicyIsAKubernetesPullPolicy) {
  std::vector<std::string> paths;
  FindFields(ModuleSchema(), "", "imagePullPolicy", &paths);
  EXPECT_EQ(paths.size(), 5u);  // the loader, and two containers each for device plugin and DRA
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    // "" is Go's omitted value: upstream accepts it, and so must we.
    EXPECT_THAT(SchemaAt(path)->value("enum", std::vector<std::string>{}),
                UnorderedElementsAreArray({"Always", "IfNotPresent", "Never", ""}));
  }
}

TEST(ModuleCrd, CoreKubernetesObjectsPassThroughUnpruned) {
  for (std::string_view path : {
           "spec.tolerations[]",
           "spec.devicePlugin.container.env[]",
           "spec.devicePlugin.container.resources",
           "spec.devicePlugin.container.volumeMounts[]",
           "spec.devicePlugin.initContainer.env[]",
           "spec.devicePlugin.volumes[]",
           "spec.dra.container.resources",
           "spec.dra.initContainer.volumeMounts[]",
           "spec.dra.volumes[]",
           "spec.dra.deviceClasses[].selectors[]",
           "spec.dra.deviceClasses[].config[]",
           "status",
       }) {
    SCOPED_TRACE(path);
    const json* node = SchemaAt(path);
    ASSERT_NE(node, nullptr);
    EXPECT_EQ(node->value("type", ""), "object");
    EXPECT_TRUE(PreservesUnknownFields(*node));
  }
}

TEST(ModuleCrd, StatusHasUpstreamCountsAndStandardConditions) {
  for (std::string_view owner : {"moduleLoader", "devicePlugin", "dra"}) {
    for (std::string_view count :
         {"nodesMatchingSelectorNumber", "desiredNumber", "availableNumber"}) {
      const std::string path = fmt::format("status.{}.{}", owner, count);
      SCOPED_TRACE(path);
      const json* node = SchemaAt(path);
      ASSERT_NE(node, nullptr);
      EXPECT_EQ(node->value("type", ""), "integer");
    }
  }
  const json* conditions = SchemaAt("status.conditions");
  ASSERT_NE(conditions, nullptr);
  EXPECT_EQ(conditions->value("x-kubernetes-list-type", ""), "map");
  EXPECT_EQ((*conditions)["x-kubernetes-list-map-keys"], json::array({"type"}));
  const json* condition = SchemaAt("status.conditions[]");
  ASSERT_NE(condition, nullptr);
  EXPECT_THAT(
      condition->value("required", std::vector<std::string>{}),
      UnorderedElementsAreArray({"type", "status", "reason", "message", "lastTransitionTime"}));
  EXPECT_EQ(SchemaAt("status.conditions[].observedGeneration")->value("type", ""), "integer");
  EXPECT_EQ(SchemaAt("status.conditions[].status")->value("enum", json()),
            json::array({"True", "False", "Unknown"}));
}

TEST(ModuleCrd, PrinterColumnsReadDeclaredFields) {
  const json& columns = Crd()["spec"]["versions"][0]["additionalPrinterColumns"];
  ASSERT_FALSE(columns.empty());
  for (const json& column : columns) {
    const std::string json_path = column.value("jsonPath", "");
    SCOPED_TRACE(json_path);
    ASSERT_FALSE(json_path.empty());
    if (json_path.starts_with(".metadata.")) {
      continue;
    }
    // A filter such as [?(@.type=="Ready")] selects array items, as "[]" does.
    std::string path = json_path.substr(1);
    if (size_t filter = path.find("[?("); filter != std::string::npos) {
      path.replace(filter, path.find(")]", filter) + 2 - filter, "[]");
    }
    const json* node = SchemaAt(path);
    ASSERT_NE(node, nullptr);
    EXPECT_EQ(node->value("type", ""), column.value("type", ""));
  }
}

// The operator checks the same rules as the CRD (for clusters with an older CRD, and for what
// CEL cannot see, such as the namespace's length), so every Module the CRD's rules reject in
// test/cluster/validation-test.sh must also fail ParseModule or ValidateModule, and every valid
// fixture must pass both.
absl::StatusOr<json> ReadModule(const std::filesystem::path& path) {
  return kube::ParseYaml(ReadFile(path), path.string());
}

std::vector<std::filesystem::path> YamlFixtures(const std::string& dir) {
  std::vector<std::filesystem::path> fixtures;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") {
      fixtures.push_back(entry.path());
    }
  }
  std::sort(fixtures.begin(), fixtures.end());
  return fixtures;
}

// Every CEL rule in the schema, with the path of the node that holds it.
void CollectRules(const json& node, const std::string& path,
                  std::vector<std::pair<std::string, json>>* rules) {
  for (const json& rule : node.value("x-kubernetes-validations", json::array())) {
    rules->emplace_back(path, rule);
  }
  for (const auto& [name, child] : PropertiesOf(node).items()) {
    CollectRules(child, FieldPath(path, name), rules);
  }
  if (node.contains("items")) CollectRules(node["items"], path + "[]", rules);
  if (node.contains("additionalProperties") && node["additionalProperties"].is_object()) {
    CollectRules(node["additionalProperties"], path + "{}", rules);
  }
}

TEST(ModuleCrd, EveryValidationRuleExplainsItself) {
  std::vector<std::pair<std::string, json>> rules;
  CollectRules(ModuleSchema(), "", &rules);
  EXPECT_GE(rules.size(), 30u);
  for (const auto& [path, rule] : rules) {
    SCOPED_TRACE(path + ": " + rule.value("rule", ""));
    EXPECT_FALSE(rule.value("rule", "").empty());
    // A bare rule would be reported as "failed rule: <the CEL expression>".
    EXPECT_TRUE(!rule.value("message", "").empty() || !rule.value("messageExpression", "").empty());
  }
}

TEST(ModuleCrd, TheOperatorRejectsEveryModuleTheCrdRejects) {
  const std::vector<std::filesystem::path> fixtures =
      YamlFixtures(std::string(KMM_CRD_TESTDATA) + "/invalid");
  ASSERT_GE(fixtures.size(), 30u);
  for (const std::filesystem::path& path : fixtures) {
    SCOPED_TRACE(path.filename().string());
    absl::StatusOr<json> object = ReadModule(path);
    ASSERT_TRUE(object.ok()) << object.status();
    absl::StatusOr<api::Module> module = api::ParseModule(*object);
    if (!module.ok()) {
      continue;
    }
    EXPECT_THAT(api::ValidateModule(*module), Not(IsEmpty()));
  }
}

TEST(ModuleCrd, TheOperatorAcceptsEveryValidFixture) {
  std::vector<std::filesystem::path> fixtures =
      YamlFixtures(std::string(KMM_CRD_TESTDATA) + "/valid");
  ASSERT_GE(fixtures.size(), 3u);
  for (const std::filesystem::path& json_fixture : Fixtures()) {
    fixtures.push_back(json_fixture);
  }
  for (const std::filesystem::path& path : fixtures) {
    SCOPED_TRACE(path.filename().string());
    absl::StatusOr<json> object = ReadModule(path);
    ASSERT_TRUE(object.ok()) << object.status();
    absl::StatusOr<api::Module> module = api::ParseModule(*object);
    ASSERT_TRUE(module.ok()) << module.status();
    EXPECT_THAT(api::ValidateModule(*module), IsEmpty());
  }
}

}  // namespace
}  // namespace kmm
