#include "common/json_fields.h"

#include "fmt/format.h"
#include "fmt/ranges.h"

namespace kmm {

absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, std::string_view source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    return absl::InvalidArgumentError(fmt::format("{}: not valid JSON: {}", source, error.what()));
  }
}

std::string JsonTypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a number";
    case nlohmann::json::value_t::null:
      return "null";
    default:
      return "an unsupported value";
  }
}

JsonFields::JsonFields(const nlohmann::json& object, std::string path)
    : object_(object), path_(std::move(path)) {}

std::string JsonFields::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

absl::Status JsonFields::TypeError(std::string_view key, const nlohmann::json& value,
                                   std::string_view expected) const {
  return absl::InvalidArgumentError(fmt::format("{}: expected {}, got {} ({})", PathOf(key),
                                                expected, JsonTypeName(value), value.dump()));
}

absl::Status JsonFields::Lookup(std::string_view key, const nlohmann::json** value) {
  *value = nullptr;
  if (!object_.is_object()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: expected an object, got {}", path_, JsonTypeName(object_)));
  }
  known_.emplace(key);
  auto it = object_.find(key);
  if (it != object_.end() && !it->is_null()) *value = &*it;
  return absl::OkStatus();
}

absl::Status JsonFields::Optional(std::string_view key, std::string* out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok() || value == nullptr) return status;
  if (!value->is_string()) return TypeError(key, *value, "a string");
  *out = value->get<std::string>();
  return absl::OkStatus();
}

absl::Status JsonFields::Optional(std::string_view key, bool* out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok() || value == nullptr) return status;
  if (!value->is_boolean()) return TypeError(key, *value, "true or false");
  *out = value->get<bool>();
  return absl::OkStatus();
}

absl::Status JsonFields::Optional(std::string_view key, int64_t* out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok() || value == nullptr) return status;
  if (!value->is_number_integer()) return TypeError(key, *value, "an integer");
  *out = value->get<int64_t>();
  return absl::OkStatus();
}

absl::Status JsonFields::Optional(std::string_view key, std::vector<std::string>* out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok() || value == nullptr) return status;
  if (!value->is_array()) return TypeError(key, *value, "an array of strings");
  std::vector<std::string> strings;
  for (size_t i = 0; i < value->size(); ++i) {
    const nlohmann::json& item = (*value)[i];
    if (!item.is_string()) {
      return TypeError(fmt::format("{}[{}]", key, i), item, "a string");
    }
    strings.push_back(item.get<std::string>());
  }
  *out = std::move(strings);
  return absl::OkStatus();
}

absl::Status JsonFields::Optional(std::string_view key, std::map<std::string, std::string>* out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok() || value == nullptr) return status;
  if (!value->is_object()) return TypeError(key, *value, "an object of strings");
  std::map<std::string, std::string> strings;
  for (const auto& [name, item] : value->items()) {
    if (!item.is_string()) return TypeError(fmt::format("{}.{}", key, name), item, "a string");
    strings.emplace(name, item.get<std::string>());
  }
  *out = std::move(strings);
  return absl::OkStatus();
}

absl::Status JsonFields::OptionalObject(std::string_view key, const nlohmann::json** out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok()) return status;
  *out = value;
  if (value != nullptr && !value->is_object()) return TypeError(key, *value, "an object");
  return absl::OkStatus();
}

absl::Status JsonFields::OptionalArray(std::string_view key, const nlohmann::json** out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok()) return status;
  *out = value;
  if (value != nullptr && !value->is_array()) return TypeError(key, *value, "an array");
  return absl::OkStatus();
}

absl::Status JsonFields::Required(std::string_view key, std::string* out) {
  const nlohmann::json* value;
  if (absl::Status status = Lookup(key, &value); !status.ok()) return status;
  if (value == nullptr) {
    return absl::InvalidArgumentError(fmt::format("{}: required field is missing", PathOf(key)));
  }
  return Optional(key, out);
}

absl::Status JsonFields::NoUnknownFields() const {
  if (!object_.is_object()) return absl::OkStatus();
  std::vector<std::string> unknown;
  for (const auto& [name, value] : object_.items()) {
    if (!known_.contains(name)) unknown.push_back(PathOf(name));
  }
  if (unknown.empty()) return absl::OkStatus();
  std::vector<std::string> known(known_.begin(), known_.end());
  return absl::InvalidArgumentError(fmt::format(
      "unknown field{} {}; the fields {} accepts are: {}", unknown.size() == 1 ? "" : "s",
      fmt::join(unknown, ", "), path_.empty() ? "this object" : path_, fmt::join(known, ", ")));
}

}  // namespace kmm
