#include "operator/kube/field_filter.h"

namespace kmm::kube {
namespace {

constexpr const char* kAlwaysKept[] = {
    "/apiVersion",
    "/kind",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/uid",
    "/metadata/resourceVersion",
    "/metadata/generation",
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

std::function<nlohmann::json(nlohmann::json)> KeepFieldsTransform(std::vector<std::string> paths) {
  return [paths = std::move(paths)](nlohmann::json object) { return KeepFields(object, paths); };
}

}  // namespace kmm::kube
