#include "operator/registry/registry_client.h"

#include <curl/curl.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace kmm::registry {
namespace {

// Every manifest form a runtime can pull, so the registry never answers 404 just because
// it keeps the image as a type we did not list.
constexpr const char* kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

// A token is not reused in its last seconds, so a request never carries one that expires
// on the way.
constexpr absl::Duration kTokenMargin = absl::Seconds(10);
// Token services that send no expires_in mean 60 s (the distribution token spec).
constexpr absl::Duration kDefaultTokenLifetime = absl::Seconds(60);

size_t AppendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t CollectHeader(char* data, size_t size, size_t count, void* out) {
  std::string_view line(data, size * count);
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = absl::AsciiStrToLower(ToAbsl(line.substr(0, colon)));
    std::string value(absl::StripAsciiWhitespace(ToAbsl(line.substr(colon + 1))));
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = std::move(value);
  }
  return size * count;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

std::string Escape(CURL* curl, std::string_view text) {
  char* escaped = curl_easy_escape(curl, text.data(), static_cast<int>(text.size()));
  std::string result = escaped == nullptr ? std::string() : escaped;
  curl_free(escaped);
  return result;
}

std::string BasicAuthorization(const Credentials& credentials) {
  return "Basic " + absl::Base64Escape(credentials.username + ":" + credentials.password);
}

bool HasUserPassword(const std::optional<Credentials>& credentials) {
  return credentials && !credentials->username.empty();
}

// The registry's own words, from its JSON error body ({"errors":[{"code","message"}]}).
std::string RegistryErrors(const std::string& body) {
  nlohmann::json document = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string text;
  if (document.is_object() && document.contains("errors") && document["errors"].is_array()) {
    for (const nlohmann::json& error : document["errors"]) {
      if (!error.is_object()) continue;
      if (!text.empty()) text += "; ";
      text += error.value("code", "") + ": " + error.value("message", "");
    }
  }
  return text.empty() ? "" : " (" + text + ")";
}

// What a cached authorization is filed under. The password is part of it: two Secrets may
// name the same user, and one whose password is wrong must not be answered with what the
// other one's password got (the cached Basic header holds the password anyway).
std::string CacheKey(const ImageReference& image, const std::optional<Credentials>& credentials) {
  if (!credentials) return absl::StrCat(image.api_host, "|", image.repository, "|");
  // The username's length keeps ("a|b", "c") and ("a", "b|c") apart.
  return absl::StrCat(image.api_host, "|", image.repository, "|", credentials->username.size(), ":",
                      credentials->username, credentials->password);
}

}  // namespace

std::optional<Challenge> ParseChallenge(std::string_view header) {
  absl::string_view rest = absl::StripAsciiWhitespace(ToAbsl(header));
  size_t space = rest.find(' ');
  Challenge challenge;
  challenge.scheme = absl::AsciiStrToLower(rest.substr(0, space));
  if (challenge.scheme.empty()) return std::nullopt;
  rest = space == absl::string_view::npos ? absl::string_view() : rest.substr(space + 1);
  while (true) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (rest.empty()) break;
    size_t equals = rest.find('=');
    if (equals == absl::string_view::npos) return std::nullopt;
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest.substr(0, equals)));
    rest = absl::StripLeadingAsciiWhitespace(rest.substr(equals + 1));
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value += rest[i];
      }
      if (i >= rest.size()) return std::nullopt;  // unterminated
      rest = rest.substr(i + 1);
    } else {
      size_t end = rest.find(',');
      value = std::string(absl::StripTrailingAsciiWhitespace(rest.substr(0, end)));
      rest = end == absl::string_view::npos ? absl::string_view() : rest.substr(end);
    }
    challenge.params[name] = value;
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!rest.empty() && rest.front() == ',') rest.remove_prefix(1);
  }
  return challenge;
}

RegistryClient::RegistryClient(Options options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

int RegistryClient::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Send(std::string_view method,
                                                              const std::string& url,
                                                              const std::string& authorization,
                                                              const Transport& transport) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  Response response;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&](const std::string& header) {
    headers.reset(curl_slist_append(headers.release(), header.c_str()));
  };
  add_header(kManifestAccept);
  if (!authorization.empty()) add_header("Authorization: " + authorization);
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(c, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  if (method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  // Blobs may be served from storage elsewhere; curl does not carry the Authorization
  // header to another host.
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  if (transport.skip_tls_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!transport.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, transport.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &response.headers);
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  {
    absl::MutexLock lock(&mu_);
    ++requests_;
  }
  CURLcode code = curl_easy_perform(c);
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        fmt::format("{} {}: {}", method, url, error[0] != '\0' ? error : curl_easy_strerror(code)));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

absl::StatusOr<std::string> RegistryClient::FetchToken(
    const Challenge& challenge, const ImageReference& image,
    const std::optional<Credentials>& credentials, const Transport& transport) {
  auto realm = challenge.params.find("realm");
  if (realm == challenge.params.end() || realm->second.empty()) {
    return absl::UnavailableError(fmt::format(
        "registry {} asked for a bearer token but named no token service (realm)", image.api_host));
  }
  std::unique_ptr<CURL, CurlDeleter> escaper(curl_easy_init());
  std::string url = realm->second;
  char separator = url.find('?') == std::string::npos ? '?' : '&';
  if (auto service = challenge.params.find("service"); service != challenge.params.end()) {
    absl::StrAppend(&url, std::string(1, separator),
                    "service=", Escape(escaper.get(), service->second));
    separator = '&';
  }
  std::string scope = "repository:" + image.repository + ":pull";
  if (auto given = challenge.params.find("scope"); given != challenge.params.end()) {
    scope = given->second;
  }
  absl::StrAppend(&url, std::string(1, separator), "scope=", Escape(escaper.get(), scope));
  // The token service is a different server: it may be plain HTTP only if the registry is.
  ASSIGN_OR_RETURN(
      Response response,
      Send("GET", url, HasUserPassword(credentials) ? BasicAuthorization(*credentials) : "",
           transport));
  if (response.status == 401 || response.status == 403) {
    return HasUserPassword(credentials)
               ? absl::PermissionDeniedError(fmt::format(
                     "the token service of registry {} refused the credentials for user \"{}\" "
                     "(HTTP {}); check the Secret imageRepoSecret names",
                     image.api_host, credentials->username, response.status))
               : absl::UnauthenticatedError(fmt::format(
                     "the token service of registry {} requires credentials (HTTP {}); name a "
                     "kubernetes.io/dockerconfigjson Secret in imageRepoSecret",
                     image.api_host, response.status));
  }
  if (response.status != 200) {
    return absl::UnavailableError(fmt::format("the token service of registry {} answered HTTP {}",
                                              image.api_host, response.status));
  }
  nlohmann::json document =
      nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  if (document.is_object()) {
    if (document.contains("token") && document["token"].is_string()) {
      token = document["token"].get<std::string>();
    } else if (document.contains("access_token") && document["access_token"].is_string()) {
      token = document["access_token"].get<std::string>();
    }
  }
  if (token.empty()) {
    return absl::UnavailableError(
        fmt::format("the token service of registry {} answered without a token", image.api_host));
  }
  absl::Duration lifetime = kDefaultTokenLifetime;
  if (document.contains("expires_in") && document["expires_in"].is_number()) {
    lifetime = absl::Seconds(document["expires_in"].get<double>());
  }
  std::string authorization = "Bearer " + token;
  const std::string key = CacheKey(image, credentials);
  absl::MutexLock lock(&mu_);
  tokens_[key] = {authorization, clock_.Now() + lifetime - kTokenMargin};
  return authorization;
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Exchange(
    const ImageReference& image, std::string_view method, const std::string& path,
    const std::optional<Credentials>& credentials, const Transport& transport) {
  const std::string url = absl::StrCat(transport.insecure ? "http" : "https", "://", image.api_host,
                                       "/v2/", image.repository, path);
  const std::string name = image.ToString();
  const std::string key = CacheKey(image, credentials);
  std::string authorization;
  if (credentials && !credentials->registry_token.empty()) {
    authorization = "Bearer " + credentials->registry_token;
  } else {
    absl::MutexLock lock(&mu_);
    if (auto cached = tokens_.find(key); cached != tokens_.end()) {
      if (clock_.Now() < cached->second.expires) {
        authorization = cached->second.authorization;
      } else {
        tokens_.erase(cached);
      }
    }
  }

  bool authenticated = false;  // sent what the challenge asked for
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<Response> response = Send(method, url, authorization, transport);
    if (!response.ok()) {
      return absl::UnavailableError(
          fmt::format("image {}: cannot reach the registry: {}. If it serves plain HTTP, set "
                      "registryTLS.insecure; if its certificate is not trusted, "
                      "registryTLS.insecureSkipTLSVerify",
                      name, response.status().message()));
    }
    if (response->status != 401) return response;
    std::optional<Challenge> challenge = ParseChallenge(response->headers["www-authenticate"]);
    if (authenticated || !challenge) {
      if (!HasUserPassword(credentials) && !(credentials && !credentials->registry_token.empty())) {
        return absl::UnauthenticatedError(
            fmt::format("image {}: the registry requires credentials; name a "
                        "kubernetes.io/dockerconfigjson Secret with them in imageRepoSecret{}",
                        name, RegistryErrors(response->body)));
      }
      {
        absl::MutexLock lock(&mu_);
        tokens_.erase(key);
      }
      return absl::PermissionDeniedError(
          fmt::format("image {}: the registry refused the credentials from imageRepoSecret{}", name,
                      RegistryErrors(response->body)));
    }
    authenticated = true;
    if (challenge->scheme == "basic") {
      if (!HasUserPassword(credentials)) {
        return absl::UnauthenticatedError(
            fmt::format("image {}: the registry requires a username and password; name a "
                        "kubernetes.io/dockerconfigjson Secret with them in imageRepoSecret",
                        name));
      }
      authorization = BasicAuthorization(*credentials);
      absl::MutexLock lock(&mu_);
      tokens_[key] = {authorization, clock_.Now() + absl::Hours(1)};
    } else if (challenge->scheme == "bearer") {
      absl::StatusOr<std::string> token = FetchToken(*challenge, image, credentials, transport);
      if (!token.ok()) return Annotate(token.status(), "image " + name);
      authorization = *std::move(token);
    } else {
      return absl::UnimplementedError(fmt::format(
          "image {}: the registry asks for \"{}\" authentication; kmm speaks Basic and Bearer",
          name, challenge->scheme));
    }
  }
  return absl::UnavailableError(
      fmt::format("image {}: the registry kept asking for authentication", name));
}

namespace {

// An answer about the image that is neither "there" nor "not there".
absl::Status UnexpectedAnswer(const std::string& name, long status, const std::string& body,
                              const Transport& transport) {
  if (status == 403) {
    return absl::PermissionDeniedError(fmt::format(
        "image {}: the registry forbids reading it (HTTP 403){}", name, RegistryErrors(body)));
  }
  // A TLS port answers a plain HTTP request with 400 (docker-registry, nginx), so with
  // registryTLS.insecure that is the likely cause.
  const char* hint = transport.insecure && status == 400
                         ? ". If the registry serves HTTPS on this port, unset registryTLS.insecure"
                         : "";
  return absl::UnavailableError(fmt::format("image {}: the registry answered HTTP {}{}{}", name,
                                            status, RegistryErrors(body), hint));
}

bool IsIndex(const nlohmann::json& manifest, const std::string& content_type) {
  std::string type = manifest.value("mediaType", content_type);
  return type.find("index") != std::string::npos || type.find("manifest.list") != std::string::npos;
}

}  // namespace

absl::StatusOr<ImageStatus> RegistryClient::Check(const ImageReference& image,
                                                  const std::optional<Credentials>& credentials,
                                                  const Transport& transport, bool with_labels) {
  const std::string name = image.ToString();
  const std::string manifest_path = "/manifests/" + image.Reference();
  if (!with_labels) {
    ASSIGN_OR_RETURN(Response response,
                     Exchange(image, "HEAD", manifest_path, credentials, transport));
    if (response.status == 405) {
      // A registry that does not do HEAD on manifests; GET answers the same question.
      ASSIGN_OR_RETURN(response, Exchange(image, "GET", manifest_path, credentials, transport));
    }
    if (response.status == 200)
      return ImageStatus{true, response.headers["docker-content-digest"], {}};
    if (response.status == 404) return ImageStatus{false, "", {}};
    return UnexpectedAnswer(name, response.status, response.body, transport);
  }

  // The labels are in the image's config blob: manifest (through an index to the
  // linux/amd64 one, or the first), then the config.
  ASSIGN_OR_RETURN(Response response,
                   Exchange(image, "GET", manifest_path, credentials, transport));
  if (response.status == 404) return ImageStatus{false, "", {}};
  if (response.status != 200)
    return UnexpectedAnswer(name, response.status, response.body, transport);
  ImageStatus status{true, response.headers["docker-content-digest"], {}};
  auto parse = [&](const Response& answer) -> absl::StatusOr<nlohmann::json> {
    nlohmann::json document =
        nlohmann::json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
    if (!document.is_object()) {
      return absl::UnavailableError(
          fmt::format("image {}: the registry sent a manifest that is not JSON", name));
    }
    return document;
  };
  ASSIGN_OR_RETURN(nlohmann::json manifest, parse(response));
  if (IsIndex(manifest, response.headers["content-type"])) {
    std::string chosen;
    for (const nlohmann::json& entry : manifest.value("manifests", nlohmann::json::array())) {
      if (!entry.is_object() || !entry.contains("digest")) continue;
      const nlohmann::json platform = entry.value("platform", nlohmann::json::object());
      if (chosen.empty()) chosen = entry["digest"].get<std::string>();
      if (platform.value("os", "") == "linux" && platform.value("architecture", "") == "amd64") {
        chosen = entry["digest"].get<std::string>();
        break;
      }
    }
    if (chosen.empty()) return status;  // an empty index: exists, no labels
    ASSIGN_OR_RETURN(Response inner,
                     Exchange(image, "GET", "/manifests/" + chosen, credentials, transport));
    if (inner.status != 200) return UnexpectedAnswer(name, inner.status, inner.body, transport);
    ASSIGN_OR_RETURN(manifest, parse(inner));
  }
  const nlohmann::json config = manifest.value("config", nlohmann::json::object());
  if (!config.contains("digest") || !config["digest"].is_string()) return status;
  ASSIGN_OR_RETURN(Response blob,
                   Exchange(image, "GET", "/blobs/" + config["digest"].get<std::string>(),
                            credentials, transport));
  if (blob.status != 200) return UnexpectedAnswer(name, blob.status, blob.body, transport);
  ASSIGN_OR_RETURN(nlohmann::json image_config, parse(blob));
  const nlohmann::json labels = image_config.value("config", nlohmann::json::object())
                                    .value("Labels", nlohmann::json::object());
  if (labels.is_object()) {
    for (const auto& [label, value] : labels.items()) {
      if (value.is_string()) status.labels[label] = value.get<std::string>();
    }
  }
  return status;
}

}  // namespace kmm::registry
