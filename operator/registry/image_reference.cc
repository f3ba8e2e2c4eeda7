#include "operator/registry/image_reference.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "re2/re2.h"

namespace kmm::registry {
namespace {

constexpr std::string_view kDockerHub = "docker.io";

bool FullMatch(std::string_view text, const RE2& re) {
  return RE2::FullMatch(re2::StringPiece(text.data(), text.size()), re);
}

// The grammar of github.com/distribution/reference, which the runtimes use: lowercase path
// components joined by '/', each made of [a-z0-9] runs separated by '.', '_', '__' or '-'s.
const RE2& PathComponent() {
  static const RE2 re("[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*");
  return re;
}
const RE2& Tag() {
  static const RE2 re("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  return re;
}
const RE2& Digest() {
  static const RE2 re("[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}");
  return re;
}
const RE2& Domain() {
  static const RE2 re(
      "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])"
      "?))*"
      "(?::[0-9]+)?|\\[[0-9a-fA-F:.]+\\](?::[0-9]+)?");
  return re;
}

absl::Status Invalid(std::string_view image, std::string_view why) {
  return absl::InvalidArgumentError(fmt::format("image \"{}\": {}", image, why));
}

}  // namespace

std::string ImageReference::ToString() const {
  std::string name = domain + "/" + repository;
  if (!tag.empty()) name += ":" + tag;
  if (!digest.empty()) name += "@" + digest;
  return name;
}

absl::StatusOr<ImageReference> ParseImageReference(std::string_view image) {
  if (image.empty()) return Invalid(image, "the name is empty");
  ImageReference ref;
  std::string_view rest = image;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!FullMatch(ref.digest, Digest())) {
      return Invalid(image, "the digest is not ALGORITHM:HEX (e.g. sha256:...)");
    }
  }
  // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!FullMatch(ref.tag, Tag())) {
      return Invalid(image,
                     "the tag may hold only letters, digits, '_', '.' and '-' (at most 128)");
    }
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";

  // The first component is a registry host if it looks like one (a '.', a port, or
  // "localhost"); otherwise the image is on Docker Hub.
  std::string_view path = rest;
  slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
        first.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos) {
      if (!FullMatch(first, Domain())) return Invalid(image, "the registry host is not valid");
      ref.domain = std::string(first);
      path = rest.substr(slash + 1);
    }
  }
  if (ref.domain.empty() || ref.domain == "index.docker.io") ref.domain = std::string(kDockerHub);
  if (path.empty()) return Invalid(image, "the repository name is empty");
  for (absl::string_view part : absl::StrSplit(ToAbsl(path), '/')) {
    std::string_view component = FromAbsl(part);
    if (!FullMatch(component, PathComponent())) {
      return Invalid(image,
                     fmt::format("\"{}\" is not a valid repository path component "
                                 "(lowercase letters, digits, and '.', '_' or '-' between them)",
                                 component));
    }
  }
  ref.repository = std::string(path);
  if (ref.domain == kDockerHub) {
    if (ref.repository.find('/') == std::string::npos) ref.repository = "library/" + ref.repository;
    ref.api_host = "registry-1.docker.io";
  } else {
    ref.api_host = ref.domain;
  }
  return ref;
}

}  // namespace kmm::registry
