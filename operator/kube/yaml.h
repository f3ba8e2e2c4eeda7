// YAML <-> JSON for the operator: kubeconfig files and `kmm-operator plan` input are YAML,
// everything the API server speaks is JSON. Built on yaml-cpp; its exceptions stop here.
#ifndef KMM_OPERATOR_KUBE_YAML_H_
#define KMM_OPERATOR_KUBE_YAML_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kmm::kube {

// Parses one YAML document (JSON is YAML too) into JSON. Plain scalars follow the YAML 1.2
// core schema as Kubernetes reads them (true/false, null/~, integers, floats); quoted
// scalars stay strings. Errors name `source` and the line.
absl::StatusOr<nlohmann::json> ParseYaml(std::string_view text, std::string_view source);

// Every document of a multi-document stream (`---` separated); empty documents are skipped.
absl::StatusOr<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text,
                                                               std::string_view source);

// Block-style YAML for people to read (`kmm-operator plan`); strings that would read back as
// another type are quoted.
std::string ToYaml(const nlohmann::json& value);

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_YAML_H_
