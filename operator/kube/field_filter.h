// Trimming cached objects to the fields a controller reads (docs/design.md §7.7): an informer
// transform that keeps a list of JSON paths and drops the rest, so 5,000 Nodes cost a few
// hundred bytes each instead of kilobytes (managedFields, images, addresses...).
#ifndef KMM_OPERATOR_KUBE_FIELD_FILTER_H_
#define KMM_OPERATOR_KUBE_FIELD_FILTER_H_

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

namespace kmm::kube {

// Keeps only the given paths (JSON pointers such as "/metadata/labels"), plus what every
// cache needs: metadata name, namespace, resourceVersion and deletionTimestamp. Missing paths
// are skipped.
nlohmann::json KeepFields(const nlohmann::json& object, const std::vector<std::string>& paths);

// The value at `path` (object keys) inside `object`, or a null value when any step is missing
// or not an object. Reads without copying: for hot paths over cached objects.
const nlohmann::json& FieldAt(const nlohmann::json& object,
                              std::initializer_list<std::string_view> path);

// The same as an informer transform.
std::function<nlohmann::json(nlohmann::json)> KeepFieldsTransform(std::vector<std::string> paths);

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_FIELD_FILTER_H_
