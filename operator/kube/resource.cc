#include "operator/kube/resource.h"

#include "fmt/format.h"

namespace kmm::kube {
namespace {

// Path segments are names Kubernetes already restricts to DNS-ish characters; escape the
// rest anyway so a bad name cannot address another path.
std::string EscapeSegment(std::string_view segment) {
  std::string out;
  for (unsigned char c : segment) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace

std::string CollectionPath(const Resource& resource, std::string_view ns) {
  std::string path = resource.group.empty()
                         ? fmt::format("/api/{}", resource.version)
                         : fmt::format("/apis/{}/{}", resource.group, resource.version);
  if (resource.namespaced && !ns.empty()) path += "/namespaces/" + EscapeSegment(ns);
  return path + "/" + resource.resource;
}

std::string ObjectPath(const Resource& resource, std::string_view ns, std::string_view name,
                       std::string_view subresource) {
  std::string path = CollectionPath(resource, ns) + "/" + EscapeSegment(name);
  if (!subresource.empty()) path += "/" + std::string(subresource);
  return path;
}

std::string ObjectKey(std::string_view ns, std::string_view name) {
  if (ns.empty()) return std::string(name);
  return fmt::format("{}/{}", ns, name);
}

}  // namespace kmm::kube
