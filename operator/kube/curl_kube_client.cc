#include "operator/kube/curl_kube_client.h"

#include <curl/curl.h>

#include <cctype>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/status.h"
#include "fmt/format.h"
#include "operator/kube/api_error.h"
#include "operator/kube/watch_decoder.h"
#include "spdlog/spdlog.h"

namespace kmm::kube {
namespace {

std::string QueryEscape(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string QueryParam(std::string_view key, std::string_view value) {
  return fmt::format("{}={}", key, QueryEscape(value));
}

// Retry-After is whole seconds from the API server (the HTTP-date form is not used by it).
std::optional<absl::Duration> ParseRetryAfter(std::string_view header_line) {
  constexpr std::string_view kName = "retry-after:";
  if (header_line.size() < kName.size()) return std::nullopt;
  for (size_t i = 0; i < kName.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header_line[i])) != kName[i]) return std::nullopt;
  }
  std::string value(header_line.substr(kName.size()));
  char* end = nullptr;
  long seconds = std::strtol(value.c_str(), &end, 10);
  if (end == value.c_str() || seconds < 0) return std::nullopt;
  return absl::Seconds(seconds);
}

size_t AppendToString(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

absl::Status CurlError(CURLcode code, const char* error_buffer, std::string_view url) {
  const std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  const absl::StatusCode status_code = code == CURLE_OPERATION_TIMEDOUT
                                           ? absl::StatusCode::kDeadlineExceeded
                                           : absl::StatusCode::kUnavailable;
  return absl::Status(status_code, ToAbsl(fmt::format("request to {} failed: {}", url, detail)));
}

}  // namespace

// An owned CURL easy handle; reset between requests, which keeps its connection alive.
class CurlKubeClient::EasyHandle {
 public:
  EasyHandle() : curl_(curl_easy_init()) {}
  ~EasyHandle() {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }
  EasyHandle(const EasyHandle&) = delete;
  EasyHandle& operator=(const EasyHandle&) = delete;
  CURL* get() const { return curl_; }

 private:
  CURL* curl_;
};

struct CurlKubeClient::Request {
  std::string verb;    // for metrics and messages
  std::string method;  // HTTP
  std::string url;
  std::optional<std::string> body;
  std::string content_type = "application/json";
};

// How one request authenticates. The PEM pointers point into config_ or into `exec`, which
// this keeps alive.
struct CurlKubeClient::Credentials {
  std::string bearer_token;  // empty: none
  const std::string* client_cert_pem = nullptr;
  const std::string* client_key_pem = nullptr;
  std::shared_ptr<const ExecCredential> exec;  // when an exec plugin gave them
};

struct CurlKubeClient::Response {
  long http_code = 0;
  std::string body;
  std::optional<absl::Duration> retry_after;
};

absl::StatusOr<std::unique_ptr<CurlKubeClient>> CurlKubeClient::Create(RestConfig config,
                                                                       ClientOptions options,
                                                                       Clock& clock) {
  InitCurlOnce();
  if (config.server.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: no API server URL", config.source.empty() ? "config" : config.source));
  }
  std::unique_ptr<CurlKubeClient> client(
      new CurlKubeClient(std::move(config), std::move(options), clock));
  if (client->config_.exec_credentials != nullptr) {
    // Not run yet (that waits for the first request), but a missing plugin is reported now.
    RETURN_IF_ERROR(client->config_.exec_credentials->CheckCommand());
  }
  if (!client->config_.token_file.empty()) {
    std::ifstream in(client->config_.token_file);
    if (!in) {
      return ErrnoError(
          errno, fmt::format("cannot read the bearer token file {}", client->config_.token_file));
    }
  }
  return client;
}

CurlKubeClient::CurlKubeClient(RestConfig config, ClientOptions options, Clock& clock)
    : config_(std::move(config)), options_(std::move(options)), clock_(clock) {}

CurlKubeClient::~CurlKubeClient() = default;

std::string CurlKubeClient::BearerToken() {
  if (config_.token_file.empty()) return config_.token;
  absl::MutexLock lock(&token_mu_);
  // Projected service-account tokens rotate (hourly by default); client-go re-reads every
  // minute, which is what we do.
  if (clock_.Now() - token_read_at_ >= absl::Minutes(1)) {
    std::ifstream in(config_.token_file);
    std::stringstream content;
    if (in) {
      content << in.rdbuf();
      std::string token = content.str();
      while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
        token.pop_back();
      }
      if (!token.empty()) token_ = std::move(token);
      token_read_at_ = clock_.Now();
    } else {
      spdlog::warn("cannot re-read the bearer token file {}; keeping the previous token",
                   config_.token_file);
    }
  }
  return token_.empty() ? config_.token : token_;
}

CurlKubeClient::Credentials CurlKubeClient::ExecCredentials(
    std::shared_ptr<const ExecCredential> exec) const {
  Credentials credentials;
  credentials.exec = std::move(exec);
  credentials.bearer_token = credentials.exec->token;
  if (!credentials.exec->client_cert_pem.empty()) {
    credentials.client_cert_pem = &credentials.exec->client_cert_pem;
    credentials.client_key_pem = &credentials.exec->client_key_pem;
  } else if (!config_.client_cert_pem.empty()) {
    credentials.client_cert_pem = &config_.client_cert_pem;
    credentials.client_key_pem = &config_.client_key_pem;
  }
  return credentials;
}

absl::StatusOr<CurlKubeClient::Credentials> CurlKubeClient::CurrentCredentials() {
  if (config_.exec_credentials != nullptr) {
    ASSIGN_OR_RETURN(std::shared_ptr<const ExecCredential> exec, config_.exec_credentials->Get());
    return ExecCredentials(std::move(exec));
  }
  Credentials credentials;
  credentials.bearer_token = BearerToken();
  if (!config_.client_cert_pem.empty()) {
    credentials.client_cert_pem = &config_.client_cert_pem;
    credentials.client_key_pem = &config_.client_key_pem;
  }
  return credentials;
}

absl::StatusOr<std::optional<CurlKubeClient::Credentials>> CurlKubeClient::RefreshedCredentials(
    const Credentials& rejected) {
  if (config_.exec_credentials == nullptr || rejected.exec == nullptr) return std::nullopt;
  absl::StatusOr<std::shared_ptr<const ExecCredential>> fresh =
      config_.exec_credentials->Refresh(*rejected.exec);
  if (!fresh.ok()) {
    return Annotate(fresh.status(),
                    "the API server refused the credential (401 Unauthorized) and getting a new "
                    "one failed");
  }
  return ExecCredentials(*std::move(fresh));
}

std::unique_ptr<CurlKubeClient::EasyHandle> CurlKubeClient::AcquireHandle() {
  {
    absl::MutexLock lock(&pool_mu_);
    if (!idle_handles_.empty()) {
      std::unique_ptr<EasyHandle> handle = std::move(idle_handles_.back());
      idle_handles_.pop_back();
      curl_easy_reset(handle->get());
      return handle;
    }
  }
  return std::make_unique<EasyHandle>();
}

void CurlKubeClient::ReleaseHandle(std::unique_ptr<EasyHandle> handle) {
  absl::MutexLock lock(&pool_mu_);
  // A handful of idle connections covers the operator's workers; more would only hold sockets.
  if (idle_handles_.size() < 8) idle_handles_.push_back(std::move(handle));
}

std::string CurlKubeClient::Url(const std::string& path,
                                const std::vector<std::string>& query) const {
  std::string url = config_.server + path;
  for (size_t i = 0; i < query.size(); ++i) url += (i == 0 ? "?" : "&") + query[i];
  return url;
}

void CurlKubeClient::ConfigureConnection(void* handle, const std::string& url,
                                         const Credentials& credentials) {
  CURL* curl = static_cast<CURL*>(handle);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // gzip from the API server for lists
  if (!config_.ca_pem.empty()) {
    curl_blob ca{const_cast<char*>(config_.ca_pem.data()), config_.ca_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
  }
  if (config_.insecure_skip_tls_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (credentials.client_cert_pem != nullptr) {
    // libcurl reuses a pooled connection only for the same certificate, so a new one from the
    // exec plugin gets a new TLS session.
    const std::string& cert_pem = *credentials.client_cert_pem;
    const std::string& key_pem = *credentials.client_key_pem;
    curl_blob cert{const_cast<char*>(cert_pem.data()), cert_pem.size(), CURL_BLOB_COPY};
    curl_blob key{const_cast<char*>(key_pem.data()), key_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &key);
  }
}

namespace {

// The request headers; the list is freed with the object.
class HeaderList {
 public:
  ~HeaderList() { curl_slist_free_all(list_); }
  void Add(const std::string& header) { list_ = curl_slist_append(list_, header.c_str()); }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

size_t CollectRetryAfter(char* data, size_t size, size_t count, void* user) {
  auto* retry_after = static_cast<std::optional<absl::Duration>*>(user);
  if (auto value = ParseRetryAfter(std::string_view(data, size * count))) *retry_after = value;
  return size * count;
}

}  // namespace

absl::StatusOr<CurlKubeClient::Response> CurlKubeClient::PerformOnce(
    const Request& request, const Credentials& credentials) {
  std::unique_ptr<EasyHandle> handle = AcquireHandle();
  CURL* curl = handle->get();
  if (curl == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
  ConfigureConnection(curl, request.url, credentials);
  HeaderList headers;
  headers.Add("Accept: application/json");
  if (!credentials.bearer_token.empty()) {
    headers.Add("Authorization: Bearer " + credentials.bearer_token);
  }
  if (request.body) headers.Add("Content-Type: " + request.content_type);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  if (request.body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body->size()));
  } else if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
  Response response;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendToString);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, CollectRetryAfter);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.retry_after);
  char error_buffer[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (code != CURLE_OK) {
    if (options_.observer != nullptr) options_.observer->OnRequest(request.verb, 0);
    return CurlError(code, error_buffer, request.url);  // the handle is dropped with its state
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.http_code);
  ReleaseHandle(std::move(handle));
  if (options_.observer != nullptr) {
    options_.observer->OnRequest(request.verb, static_cast<int>(response.http_code));
  }
  return response;
}

absl::StatusOr<nlohmann::json> CurlKubeClient::Call(const Request& request) {
  ASSIGN_OR_RETURN(Credentials credentials, CurrentCredentials());
  bool refreshed = false;
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(Response response, PerformOnce(request, credentials));
    if (response.http_code == 401 && !refreshed) {
      // Only once: when the new credential is refused too, asking the plugin again will
      // not help.
      refreshed = true;
      ASSIGN_OR_RETURN(std::optional<Credentials> fresh, RefreshedCredentials(credentials));
      if (fresh.has_value()) {
        credentials = std::move(*fresh);
        continue;
      }
    }
    if (response.http_code >= 200 && response.http_code < 300) {
      if (response.body.empty()) return nlohmann::json::object();
      nlohmann::json parsed =
          nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded()) {
        return absl::DataLossError(
            fmt::format("{} {}: the response is not JSON", request.method, request.url));
      }
      return parsed;
    }
    const bool retryable = response.http_code == 429 ||
                           (response.http_code >= 500 && response.retry_after.has_value());
    if (retryable && attempt < options_.max_retries) {
      const absl::Duration wait =
          std::min(response.retry_after.value_or(absl::Seconds(1)), options_.max_retry_after);
      spdlog::debug("{} {}: HTTP {}, retrying in {}", request.method, request.url,
                    response.http_code, absl::FormatDuration(wait));
      clock_.SleepFor(wait);
      continue;
    }
    return ExplainRefusal(ApiErrorFromResponse(static_cast<int>(response.http_code), response.body,
                                               response.retry_after),
                          credentials);
  }
}

absl::Status CurlKubeClient::ExplainRefusal(absl::Status status,
                                            const Credentials& credentials) const {
  if (status.code() != absl::StatusCode::kUnauthenticated || credentials.exec == nullptr) {
    return status;
  }
  return Annotate(status, fmt::format("{}: credential plugin {}: the API server refused the "
                                      "credential it gave, also after running it again",
                                      config_.exec_credentials->config().origin,
                                      config_.exec_credentials->config().command));
}

absl::StatusOr<nlohmann::json> CurlKubeClient::Get(const Resource& resource, std::string_view ns,
                                                   std::string_view name) {
  return Call({"get", "GET", Url(ObjectPath(resource, ns, name), {}), std::nullopt});
}

absl::StatusOr<ObjectList> CurlKubeClient::List(const Resource& resource, std::string_view ns,
                                                const ListOptions& options) {
  std::vector<std::string> query;
  if (!options.label_selector.empty()) {
    query.push_back(QueryParam("labelSelector", options.label_selector));
  }
  if (!options.field_selector.empty()) {
    query.push_back(QueryParam("fieldSelector", options.field_selector));
  }
  if (options.limit > 0) query.push_back(QueryParam("limit", std::to_string(options.limit)));
  if (!options.continue_token.empty()) {
    query.push_back(QueryParam("continue", options.continue_token));
  }
  if (!options.resource_version.empty()) {
    query.push_back(QueryParam("resourceVersion", options.resource_version));
  }
  ASSIGN_OR_RETURN(nlohmann::json list,
                   Call({"list", "GET", Url(CollectionPath(resource, ns), query), std::nullopt}));
  ObjectList result;
  if (auto items = list.find("items"); items != list.end() && items->is_array()) {
    result.items.reserve(items->size());
    for (auto& item : *items) {
      // Lists leave kind/apiVersion out of items; put them back so objects look the same
      // whether they came from a list, a get or a watch.
      if (!item.contains("kind")) item["kind"] = resource.kind;
      if (!item.contains("apiVersion")) item["apiVersion"] = resource.ApiVersion();
      result.items.push_back(std::move(item));
    }
  }
  if (auto metadata = list.find("metadata"); metadata != list.end() && metadata->is_object()) {
    result.resource_version = metadata->value("resourceVersion", "");
    result.continue_token = metadata->value("continue", "");
  }
  return result;
}

namespace {

// The object's metadata.name, required for object-addressed requests.
absl::StatusOr<std::string> NameOf(const nlohmann::json& object, const Resource& resource) {
  const nlohmann::json* name = nullptr;
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object() &&
      object["metadata"].contains("name")) {
    name = &object["metadata"]["name"];
  }
  if (name == nullptr || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(fmt::format("{}: metadata.name must be set", resource.kind));
  }
  return name->get<std::string>();
}

}  // namespace

absl::StatusOr<nlohmann::json> CurlKubeClient::Create(const Resource& resource, std::string_view ns,
                                                      const nlohmann::json& object) {
  return Call({"create", "POST", Url(CollectionPath(resource, ns), {}), object.dump()});
}

absl::StatusOr<nlohmann::json> CurlKubeClient::Update(const Resource& resource, std::string_view ns,
                                                      const nlohmann::json& object,
                                                      std::string_view subresource) {
  ASSIGN_OR_RETURN(std::string name, NameOf(object, resource));
  return Call(
      {"update", "PUT", Url(ObjectPath(resource, ns, name, subresource), {}), object.dump()});
}

absl::Status CurlKubeClient::Delete(const Resource& resource, std::string_view ns,
                                    std::string_view name, const DeleteOptions& options) {
  nlohmann::json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!options.propagation_policy.empty()) body["propagationPolicy"] = options.propagation_policy;
  if (options.precondition_uid) body["preconditions"]["uid"] = *options.precondition_uid;
  if (options.precondition_resource_version) {
    body["preconditions"]["resourceVersion"] = *options.precondition_resource_version;
  }
  if (options.grace_period_seconds) body["gracePeriodSeconds"] = *options.grace_period_seconds;
  return Call({"delete", "DELETE", Url(ObjectPath(resource, ns, name), {}), body.dump()}).status();
}

absl::StatusOr<nlohmann::json> CurlKubeClient::MergePatch(const Resource& resource,
                                                          std::string_view ns,
                                                          std::string_view name,
                                                          const nlohmann::json& patch,
                                                          std::string_view subresource) {
  return Call({"patch", "PATCH", Url(ObjectPath(resource, ns, name, subresource), {}), patch.dump(),
               "application/merge-patch+json"});
}

absl::StatusOr<nlohmann::json> CurlKubeClient::Apply(const Resource& resource, std::string_view ns,
                                                     const nlohmann::json& object,
                                                     const ApplyOptions& options,
                                                     std::string_view subresource) {
  ASSIGN_OR_RETURN(std::string name, NameOf(object, resource));
  if (options.field_manager.empty()) {
    return absl::InvalidArgumentError("server-side apply needs a field manager");
  }
  std::vector<std::string> query = {QueryParam("fieldManager", options.field_manager)};
  if (options.force) query.push_back("force=true");
  // JSON is YAML, so the object goes as it is.
  return Call({"apply", "PATCH", Url(ObjectPath(resource, ns, name, subresource), query),
               object.dump(), "application/apply-patch+yaml"});
}

namespace {

// State the watch's libcurl callbacks share.
struct WatchTransfer {
  CURL* curl = nullptr;
  const WatchCallback* on_event = nullptr;
  WatchStreamDecoder decoder;
  absl::Status decode_error;
  bool stopped_by_callback = false;
  long http_code = 0;
  std::string error_body;  // a non-200 response's body (a metav1.Status)
  std::optional<absl::Duration> retry_after;
};

size_t WatchWrite(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<WatchTransfer*>(user);
  const size_t bytes = size * count;
  if (transfer->http_code == 0) {
    curl_easy_getinfo(transfer->curl, CURLINFO_RESPONSE_CODE, &transfer->http_code);
  }
  if (transfer->http_code != 200) {
    transfer->error_body.append(data, bytes);
    return bytes;
  }
  bool stopped = false;
  absl::Status status =
      transfer->decoder.Feed(std::string_view(data, bytes), *transfer->on_event, &stopped);
  if (!status.ok()) {
    transfer->decode_error = status;
    return 0;  // aborts the transfer
  }
  if (stopped) {
    transfer->stopped_by_callback = true;
    return 0;
  }
  return bytes;
}

size_t WatchHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<WatchTransfer*>(user);
  if (auto value = ParseRetryAfter(std::string_view(data, size * count))) {
    transfer->retry_after = value;
  }
  return size * count;
}

// Owns a multi handle (so a cancel can interrupt the wait with curl_multi_wakeup).
class MultiHandle {
 public:
  MultiHandle() : multi_(curl_multi_init()) {}
  ~MultiHandle() { curl_multi_cleanup(multi_); }
  MultiHandle(const MultiHandle&) = delete;
  MultiHandle& operator=(const MultiHandle&) = delete;
  CURLM* get() const { return multi_; }

 private:
  CURLM* multi_;
};

}  // namespace

absl::Status CurlKubeClient::Watch(const Resource& resource, std::string_view ns,
                                   const WatchOptions& options, const WatchCallback& on_event,
                                   const Cancellation& cancel) {
  std::vector<std::string> query = {"watch=1"};
  if (!options.label_selector.empty()) {
    query.push_back(QueryParam("labelSelector", options.label_selector));
  }
  if (!options.field_selector.empty()) {
    query.push_back(QueryParam("fieldSelector", options.field_selector));
  }
  if (!options.resource_version.empty()) {
    query.push_back(QueryParam("resourceVersion", options.resource_version));
  }
  if (options.allow_bookmarks) query.push_back("allowWatchBookmarks=true");
  if (options.timeout_seconds > 0) {
    query.push_back(QueryParam("timeoutSeconds", std::to_string(options.timeout_seconds)));
  }
  const std::string url = Url(CollectionPath(resource, ns), query);
  ASSIGN_OR_RETURN(Credentials credentials, CurrentCredentials());
  long http_code = 0;
  absl::Status status = WatchOnce(url, credentials, on_event, cancel, &http_code);
  if (http_code == 401 && !cancel.cancelled()) {
    // As for other requests: one new credential from the exec plugin, one more try.
    ASSIGN_OR_RETURN(std::optional<Credentials> fresh, RefreshedCredentials(credentials));
    if (fresh.has_value()) {
      status = WatchOnce(url, *fresh, on_event, cancel, &http_code);
      return ExplainRefusal(status, *fresh);
    }
  }
  return status;
}

absl::Status CurlKubeClient::WatchOnce(const std::string& url, const Credentials& credentials,
                                       const WatchCallback& on_event, const Cancellation& cancel,
                                       long* http_code) {
  *http_code = 0;
  EasyHandle handle;
  MultiHandle multi;
  if (handle.get() == nullptr || multi.get() == nullptr) {
    return absl::ResourceExhaustedError("curl_easy_init or curl_multi_init failed");
  }
  CURL* curl = handle.get();
  ConfigureConnection(curl, url, credentials);
  HeaderList headers;
  headers.Add("Accept: application/json");
  if (!credentials.bearer_token.empty()) {
    headers.Add("Authorization: Bearer " + credentials.bearer_token);
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  WatchTransfer transfer;
  transfer.curl = curl;
  transfer.on_event = &on_event;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WatchWrite);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WatchHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  char error_buffer[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);

  curl_multi_add_handle(multi.get(), curl);
  const int wakeup_id = cancel.OnCancel([&multi] { curl_multi_wakeup(multi.get()); });
  CURLcode result = CURLE_OK;
  bool finished = false;
  while (!finished && !cancel.cancelled()) {
    int running = 0;
    if (CURLMcode code = curl_multi_perform(multi.get(), &running); code != CURLM_OK) {
      result = CURLE_RECV_ERROR;
      snprintf(error_buffer, sizeof(error_buffer), "%s", curl_multi_strerror(code));
      break;
    }
    int pending = 0;
    while (CURLMsg* message = curl_multi_info_read(multi.get(), &pending)) {
      if (message->msg == CURLMSG_DONE) {
        result = message->data.result;
        finished = true;
      }
    }
    if (!finished && running > 0) curl_multi_poll(multi.get(), nullptr, 0, 1000, nullptr);
  }
  cancel.Remove(wakeup_id);
  curl_multi_remove_handle(multi.get(), curl);
  if (transfer.http_code == 0) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &transfer.http_code);
  *http_code = transfer.http_code;
  if (options_.observer != nullptr) {
    options_.observer->OnRequest("watch", static_cast<int>(transfer.http_code));
  }

  if (cancel.cancelled() && !finished) return absl::CancelledError("watch cancelled");
  if (transfer.stopped_by_callback) return absl::OkStatus();
  if (!transfer.decode_error.ok()) return transfer.decode_error;
  if (transfer.http_code != 0 && transfer.http_code != 200) {
    return ApiErrorFromResponse(static_cast<int>(transfer.http_code), transfer.error_body,
                                transfer.retry_after);
  }
  if (result != CURLE_OK) return CurlError(result, error_buffer, url);
  return absl::OkStatus();  // the server ended the watch (its timeout); continue from the last RV
}

}  // namespace kmm::kube
