// Semantic checks on a parsed Module: upstream KMM's admission webhook rules
// (internal/webhook/module.go) and the CRD schema rules a decoder cannot express, plus a few
// of ours that catch, at admission, mistakes upstream only reports later. The operator reports
// the messages in the Module's status and events. The CRD (manifests/crd) enforces the same
// rules with CEL where it can, at admission, including upstream's update rule on
// moduleLoader.container.version; these checks stay for what CEL cannot see (the namespace's
// length) and for clusters that run an older CRD.
//
// Each message names the field path and says how to fix it; callers add the Module's name.
#ifndef KMM_OPERATOR_API_VALIDATION_H_
#define KMM_OPERATOR_API_VALIDATION_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "operator/api/module.h"

namespace kmm::api {

// Upstream's limit on len(name) + len(namespace): node label keys derived from both must fit
// Kubernetes' 63-character name part.
inline constexpr size_t kMaxNameAndNamespaceLength = 41;

// Every problem with `module`; empty when it is valid.
std::vector<std::string> ValidateModule(const Module& module);

// Whether `image` names a tag or a digest ("repo:tag", "repo@sha256:..."), tested as upstream
// does: it contains ':' or '@' (so a registry port alone also passes, as upstream).
bool ImageHasTagOrDigest(std::string_view image);

}  // namespace kmm::api

#endif  // KMM_OPERATOR_API_VALIDATION_H_
