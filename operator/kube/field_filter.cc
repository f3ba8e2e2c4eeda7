#include "operator/kube/field_filter.h"

namespace kmm::kube {
namespace {

// What every cache needs: the key, the version the informer compares on a relist, and whether
// the object is going away. apiVersion, kind, uid and generation only when asked for: watch
// events carry them and list items do not, and at 10,000 objects each field is ~1 MiB.
constexpr const char* kAlwaysKept[] = {
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/resourceVersion",
    "/metadata/deletionTimestamp",
};

void Keep(const nlohmann::json& object, const std::string& path, nlohmann::json& out) {
  const nlohmann::json::json_pointer pointer(path);
  if (object.contains(pointer)) out[pointer] = object[pointer];
}

}  // namespace

nlohmann::json KeepFields(const nlohmann::json& object, const std::vector<std::string>& paths) {
  nlohmann::json out = nlohmann::json::object();
  for (const char* path : kAlwaysKept) Keep(object, path, out);
  for (const std::string& path : paths) Keep(object, path, out);
  return out;
}

const nlohmann::json& FieldAt(const nlohmann::json& object,
                              std::initializer_list<std::string_view> path) {
  static const nlohmann::json kNull;
  const nlohmann::json* current = &object;
  for (std::string_view key : path) {
    if (!current->is_object()) return kNull;
    auto it = current->find(key);
    if (it == current->end()) return kNull;
    current = &*it;
  }
  return *current;
}

std::function<nlohmann::json(nlohmann::json)> KeepFieldsTransform(std::vector<std::string> paths) {
  return [paths = std::move(paths)](nlohmann::json object) { return KeepFields(object, paths); };
}

}  // namespace kmm::kube
