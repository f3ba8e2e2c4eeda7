// The real KubeClient: HTTPS (HTTP/2 where the server offers it) to the API server with
// libcurl. Connections are kept in a small pool of easy handles and reused; each watch gets
// its own connection. Thread-safe: any number of threads may call it at once.
#ifndef KMM_OPERATOR_KUBE_CURL_KUBE_CLIENT_H_
#define KMM_OPERATOR_KUBE_CURL_KUBE_CLIENT_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "operator/kube/kube_client.h"
#include "operator/kube/metrics.h"
#include "operator/kube/rest_config.h"

namespace kmm::kube {

// Told about every API request once its outcome is known (for metrics). `verb` is the
// Kubernetes verb (get, list, watch, create, update, patch, apply, delete); `http_code` is 0
// when no response arrived.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void OnRequest(std::string_view verb, int http_code) = 0;
};

// Counts requests in kmm_api_requests_total{verb,code} ("0": no response).
class RequestMetrics final : public RequestObserver {
 public:
  explicit RequestMetrics(ClientMetrics& metrics) : metrics_(metrics) {}
  void OnRequest(std::string_view verb, int http_code) override {
    metrics_.api_requests_total.WithLabels({std::string(verb), std::to_string(http_code)}).Inc();
  }

 private:
  ClientMetrics& metrics_;
};

struct ClientOptions {
  absl::Duration request_timeout = absl::Seconds(30);  // not for watches
  absl::Duration connect_timeout = absl::Seconds(10);
  // 429 Too Many Requests (and 5xx with Retry-After) are retried this often, after the
  // server's Retry-After (capped at max_retry_after).
  int max_retries = 5;
  absl::Duration max_retry_after = absl::Seconds(10);
  std::string user_agent = "kmm-operator";
  RequestObserver* observer = nullptr;  // not owned; may be null
};

class CurlKubeClient final : public KubeClient {
 public:
  // Checks the configuration (e.g. a token file that cannot be read) before any request.
  static absl::StatusOr<std::unique_ptr<CurlKubeClient>> Create(RestConfig config,
                                                                ClientOptions options,
                                                                Clock& clock = RealClock());
  ~CurlKubeClient() override;

  absl::StatusOr<nlohmann::json> Get(const Resource& resource, std::string_view ns,
                                     std::string_view name) override;
  absl::StatusOr<ObjectList> List(const Resource& resource, std::string_view ns,
                                  const ListOptions& options) override;
  absl::StatusOr<nlohmann::json> Create(const Resource& resource, std::string_view ns,
                                        const nlohmann::json& object) override;
  absl::StatusOr<nlohmann::json> Update(const Resource& resource, std::string_view ns,
                                        const nlohmann::json& object,
                                        std::string_view subresource) override;
  absl::Status Delete(const Resource& resource, std::string_view ns, std::string_view name,
                      const DeleteOptions& options) override;
  absl::StatusOr<nlohmann::json> MergePatch(const Resource& resource, std::string_view ns,
                                            std::string_view name, const nlohmann::json& patch,
                                            std::string_view subresource) override;
  absl::StatusOr<nlohmann::json> Apply(const Resource& resource, std::string_view ns,
                                       const nlohmann::json& object, const ApplyOptions& options,
                                       std::string_view subresource) override;
  absl::Status Watch(const Resource& resource, std::string_view ns, const WatchOptions& options,
                     const WatchCallback& on_event, const Cancellation& cancel) override;

  const RestConfig& config() const { return config_; }

 private:
  struct Response;
  struct Request;
  struct Credentials;
  class EasyHandle;

  CurlKubeClient(RestConfig config, ClientOptions options, Clock& clock);

  // One request with retries on 429, and one retry with a new credential from the exec
  // plugin on 401; API errors become Status values.
  absl::StatusOr<nlohmann::json> Call(const Request& request);
  absl::StatusOr<Response> PerformOnce(const Request& request, const Credentials& credentials);
  // One watch request until it ends; `http_code` is the response's status (0: none).
  absl::Status WatchOnce(const std::string& url, const Credentials& credentials,
                         const WatchCallback& on_event, const Cancellation& cancel,
                         long* http_code);
  void ConfigureConnection(void* curl, const std::string& url, const Credentials& credentials);
  std::string Url(const std::string& path, const std::vector<std::string>& query) const;
  // What to authenticate the next request with: the exec plugin's credential (cached by its
  // provider), else the configured client certificate and bearer token.
  absl::StatusOr<Credentials> CurrentCredentials();
  // `exec` (from the plugin) with the configured client certificate when it has none.
  Credentials ExecCredentials(std::shared_ptr<const ExecCredential> exec) const;
  // After a 401 with `rejected`: the exec plugin's next credential, or nothing when there is
  // no plugin (a fixed credential will not get better by asking again).
  absl::StatusOr<std::optional<Credentials>> RefreshedCredentials(const Credentials& rejected);
  // A 401 with an exec plugin's credential (already renewed once) says which plugin.
  absl::Status ExplainRefusal(absl::Status status, const Credentials& credentials) const;
  // The bearer token, re-read from config_.token_file at most once a minute (rotation).
  std::string BearerToken();

  std::unique_ptr<EasyHandle> AcquireHandle();
  void ReleaseHandle(std::unique_ptr<EasyHandle> handle);

  const RestConfig config_;
  const ClientOptions options_;
  Clock& clock_;

  absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
  absl::Time token_read_at_ ABSL_GUARDED_BY(token_mu_) = absl::InfinitePast();

  absl::Mutex pool_mu_;
  std::vector<std::unique_ptr<EasyHandle>> idle_handles_ ABSL_GUARDED_BY(pool_mu_);
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_CURL_KUBE_CLIENT_H_
