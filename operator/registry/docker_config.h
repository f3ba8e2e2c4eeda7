// Registry credentials from a Secret of type kubernetes.io/dockerconfigjson (its
// `.dockerconfigjson` key), which is what a Module's `imageRepoSecret` names: the same
// Secret the kubelet pulls with and the builder pushes with.
#ifndef KMM_OPERATOR_REGISTRY_DOCKER_CONFIG_H_
#define KMM_OPERATOR_REGISTRY_DOCKER_CONFIG_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kmm::registry {

struct Credentials {
  std::string username;
  std::string password;
  // "registrytoken": a bearer token to send as it is, without asking a token service.
  std::string registry_token;
  bool operator==(const Credentials&) const = default;
};

class DockerConfig {
 public:
  // Parses the `.dockerconfigjson` document ({"auths": {KEY: {"auth": base64(user:pass)} or
  // {"username", "password"} ...}}; the older `.dockercfg` form without "auths" too).
  // `source` names it in errors ("Secret ns/name").
  static absl::StatusOr<DockerConfig> Parse(std::string_view json, std::string_view source);

  // The credentials for `domain` and `repository`, matched as the kubelet matches them: the
  // key's host (scheme and a "/v1/" or "/v2/" suffix ignored, Docker Hub's aliases equal)
  // must equal the image's, and a key with a path must be a prefix of the repository at a
  // '/' boundary; the longest matching key wins. nullopt: anonymous.
  std::optional<Credentials> Find(std::string_view domain, std::string_view repository) const;

 private:
  struct Entry {
    std::string host;  // lowercase, with port
    std::string path;  // "" or "team" (no slashes at the ends)
    Credentials credentials;
  };
  std::vector<Entry> entries_;
};

}  // namespace kmm::registry

#endif  // KMM_OPERATOR_REGISTRY_DOCKER_CONFIG_H_
