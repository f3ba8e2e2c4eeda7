#include "operator/registry/docker_config.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace kmm::registry {
namespace {

using nlohmann::json;

// Docker Hub answers to several names; credentials saved by `docker login` use the first.
bool IsDockerHub(std::string_view host) {
  return host == "index.docker.io" || host == "docker.io" || host == "registry-1.docker.io";
}

std::string CanonicalHost(std::string host) {
  host = absl::AsciiStrToLower(host);
  return IsDockerHub(host) ? "docker.io" : host;
}

}  // namespace

absl::StatusOr<DockerConfig> DockerConfig::Parse(std::string_view text, std::string_view source) {
  json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: .dockerconfigjson is not a JSON object; create it with `kubectl create "
                    "secret docker-registry`",
                    source));
  }
  const json& auths = document.contains("auths") ? document["auths"] : document;
  if (!auths.is_object()) {
    return absl::InvalidArgumentError(fmt::format("{}: \"auths\" is not an object", source));
  }
  DockerConfig config;
  for (const auto& [key, value] : auths.items()) {
    if (!value.is_object()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: auths[\"{}\"] is not an object", source, key));
    }
    Entry entry;
    std::string_view location = key;
    if (size_t scheme = location.find("://"); scheme != std::string_view::npos) {
      location = location.substr(scheme + 3);
    }
    size_t slash = location.find('/');
    entry.host = CanonicalHost(std::string(location.substr(0, slash)));
    if (slash != std::string_view::npos) {
      absl::string_view path = ToAbsl(location.substr(slash + 1));
      while (absl::ConsumeSuffix(&path, "/")) {
      }
      // "https://index.docker.io/v1/" and ".../v2/" name the registry, not a repository.
      if (path != "v1" && path != "v2") entry.path = std::string(path);
    }
    Credentials& credentials = entry.credentials;
    auto string_field = [&](const char* name) -> absl::StatusOr<std::string> {
      if (!value.contains(name) || value[name].is_null()) return std::string();
      if (!value[name].is_string()) {
        return absl::InvalidArgumentError(
            fmt::format("{}: auths[\"{}\"].{} is not a string", source, key, name));
      }
      return value[name].get<std::string>();
    };
    ASSIGN_OR_RETURN(std::string auth, string_field("auth"));
    ASSIGN_OR_RETURN(credentials.username, string_field("username"));
    ASSIGN_OR_RETURN(credentials.password, string_field("password"));
    ASSIGN_OR_RETURN(credentials.registry_token, string_field("registrytoken"));
    if (!auth.empty()) {
      std::string decoded;
      size_t colon = std::string::npos;
      if (absl::Base64Unescape(auth, &decoded)) colon = decoded.find(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(
            fmt::format("{}: auths[\"{}\"].auth is not base64 of USERNAME:PASSWORD", source, key));
      }
      credentials.username = decoded.substr(0, colon);
      credentials.password = decoded.substr(colon + 1);
    }
    config.entries_.push_back(std::move(entry));
  }
  return config;
}

std::optional<Credentials> DockerConfig::Find(std::string_view domain,
                                              std::string_view repository) const {
  const std::string host = CanonicalHost(std::string(domain));
  const Entry* best = nullptr;
  for (const Entry& entry : entries_) {
    if (entry.host != host) continue;
    if (!entry.path.empty()) {
      absl::string_view repo = ToAbsl(repository);
      if (!absl::StartsWith(repo, entry.path)) continue;
      if (repo.size() != entry.path.size() && repo[entry.path.size()] != '/') continue;
    }
    if (best == nullptr || entry.path.size() > best->path.size()) best = &entry;
  }
  if (best == nullptr) return std::nullopt;
  return best->credentials;
}

}  // namespace kmm::registry
