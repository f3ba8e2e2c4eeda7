// An image name as Kubernetes and Docker read it ("registry.example:5000/team/driver:6.1.0",
// "ubuntu@sha256:...", "busybox"), split into what the registry API needs: the host to
// talk to, the repository path and the tag or digest to ask for.
#ifndef KMM_OPERATOR_REGISTRY_IMAGE_REFERENCE_H_
#define KMM_OPERATOR_REGISTRY_IMAGE_REFERENCE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kmm::registry {

struct ImageReference {
  // As written in the image name ("docker.io" when it names none); credentials are looked
  // up by this name.
  std::string domain;
  // The host (and port) the distribution API is served on: `domain`, except Docker Hub,
  // whose API is registry-1.docker.io.
  std::string api_host;
  std::string repository;  // "team/driver"; Docker Hub's one-part names get "library/"
  std::string tag;         // empty when the name has a digest and no tag
  std::string digest;      // "sha256:..." or empty
  // What the manifest is asked for by: the digest if there is one, else the tag.
  std::string Reference() const { return digest.empty() ? tag : digest; }
  // The whole name again, with the defaults filled in ("docker.io/library/busybox:latest").
  std::string ToString() const;
};

// Parses `image` as the container runtime does; a missing tag means "latest". Errors name
// what is wrong with the name.
absl::StatusOr<ImageReference> ParseImageReference(std::string_view image);

}  // namespace kmm::registry

#endif  // KMM_OPERATOR_REGISTRY_IMAGE_REFERENCE_H_
