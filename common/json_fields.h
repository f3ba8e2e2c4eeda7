// Reads the fields of one JSON object (a config file, a CRD's spec) with errors that name
// the JSON path, the problem and the fix, and rejects fields nobody asked for.
//
// Typical use:
//   JsonFields fields(json, "config");
//   RETURN_IF_ERROR(fields.Required("moduleName", &config.module_name));
//   RETURN_IF_ERROR(fields.Optional("dirName", &config.dir_name));
//   RETURN_IF_ERROR(fields.NoUnknownFields());
#ifndef KMM_COMMON_JSON_FIELDS_H_
#define KMM_COMMON_JSON_FIELDS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kmm {

// Parses `text` as JSON; the error names `source` (a file name) and the position.
absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, std::string_view source);

// A JSON type name as users see it: "a string", "an array", ...
std::string JsonTypeName(const nlohmann::json& value);

class JsonFields {
 public:
  // `object` must outlive this reader. `path` is how errors name it, e.g. "config" or
  // "devicePlugin.resources[2]". A non-object yields an error from every call.
  JsonFields(const nlohmann::json& object, std::string path);

  // Leaves `*out` unchanged when the field is absent (or null).
  absl::Status Optional(std::string_view key, std::string* out);
  absl::Status Optional(std::string_view key, bool* out);
  absl::Status Optional(std::string_view key, int64_t* out);
  absl::Status Optional(std::string_view key, std::vector<std::string>* out);
  absl::Status Optional(std::string_view key, std::map<std::string, std::string>* out);
  // For nested objects and arrays: `*out` is nullptr when absent; an error when present with
  // another type than `type` (object or array).
  absl::Status OptionalObject(std::string_view key, const nlohmann::json** out);
  absl::Status OptionalArray(std::string_view key, const nlohmann::json** out);

  // As Optional, but absence is an error.
  absl::Status Required(std::string_view key, std::string* out);

  // Fails naming every field that no Optional/Required call asked for.
  absl::Status NoUnknownFields() const;

  // "config.args.load"
  std::string PathOf(std::string_view key) const;
  const std::string& path() const { return path_; }

 private:
  absl::Status Lookup(std::string_view key, const nlohmann::json** value);
  absl::Status TypeError(std::string_view key, const nlohmann::json& value,
                         std::string_view expected) const;

  const nlohmann::json& object_;
  std::string path_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace kmm

#endif  // KMM_COMMON_JSON_FIELDS_H_
