#include "operator/kube/yaml.h"

#include <cerrno>
#include <cstdlib>

#include "absl/status/status.h"
#include "fmt/format.h"
#include "yaml-cpp/yaml.h"

namespace kmm::kube {
namespace {

// A plain (unquoted) scalar the way the YAML 1.2 core schema types it.
nlohmann::json PlainScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const bool looks_numeric = (text[0] >= '0' && text[0] <= '9') || text[0] == '-' || text[0] == '+' ||
                             text[0] == '.';
  if (looks_numeric) {
    long long integer = std::strtoll(begin, &end, 10);
    if (errno == 0 && end == begin + text.size()) return integer;
    errno = 0;
    double real = std::strtod(begin, &end);
    // strtod also accepts hex floats, "inf" and "nan" spelled in ways YAML does not; require
    // a decimal shape.
    if (errno == 0 && end == begin + text.size() &&
        text.find_first_of("xXnN") == std::string::npos) {
      return real;
    }
  }
  return text;
}

nlohmann::json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      // yaml-cpp tags quoted scalars "!" and plain ones "?".
      if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str") return node.Scalar();
      return PlainScalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const YAML::Node& item : node) array.push_back(ToJson(item));
      return array;
    }
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.as<std::string>()] = ToJson(entry.second);
      return object;
    }
  }
  return nullptr;
}

absl::Status YamlError(std::string_view source, const YAML::Exception& error) {
  return absl::InvalidArgumentError(fmt::format("{}: not valid YAML: line {}, column {}: {}",
                                                source, error.mark.line + 1,
                                                error.mark.column + 1, error.msg));
}

void Emit(YAML::Emitter& out, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key << key << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case nlohmann::json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : value) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case nlohmann::json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      // Quote strings a reader would type differently ("true", "1.5", "null", "").
      if (!PlainScalar(text).is_string()) {
        out << YAML::DoubleQuoted << text;
      } else {
        out << text;
      }
      break;
    }
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out << YAML::Null;
      break;
    default:
      out << value.dump();  // booleans and numbers print the same in YAML
  }
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseYaml(std::string_view text, std::string_view source) {
  try {
    return ToJson(YAML::Load(std::string(text)));
  } catch (const YAML::Exception& error) {
    return YamlError(source, error);
  }
}

absl::StatusOr<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text,
                                                               std::string_view source) {
  try {
    std::vector<nlohmann::json> documents;
    for (const YAML::Node& node : YAML::LoadAll(std::string(text))) {
      nlohmann::json document = ToJson(node);
      if (!document.is_null()) documents.push_back(std::move(document));
    }
    return documents;
  } catch (const YAML::Exception& error) {
    return YamlError(source, error);
  }
}

std::string ToYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace kmm::kube
