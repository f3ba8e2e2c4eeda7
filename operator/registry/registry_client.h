// Asks an image registry whether an image exists, over the OCI distribution API: HEAD
// /v2/<repository>/manifests/<tag or digest>. Handles the registry's authentication as
// the container runtimes do: anonymous first; on 401, the challenge in WWW-Authenticate
// decides between HTTP Basic with the credentials and a bearer token fetched from the
// token service it names (with the credentials, if any). Tokens are reused until shortly
// before they expire. Thread-safe.
#ifndef KMM_OPERATOR_REGISTRY_REGISTRY_CLIENT_H_
#define KMM_OPERATOR_REGISTRY_REGISTRY_CLIENT_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "operator/registry/docker_config.h"
#include "operator/registry/image_reference.h"

namespace kmm::registry {

// How to reach the registry; the Module's `registryTLS` and friends.
struct Transport {
  bool insecure = false;         // plain HTTP ("insecure")
  bool skip_tls_verify = false;  // HTTPS without checking the certificate
  std::string ca_file;           // extra CA bundle (PEM) to trust; empty: the system's
  bool operator==(const Transport&) const = default;
};

struct ImageStatus {
  bool exists = false;
  std::string digest;  // Docker-Content-Digest when it exists, if the registry sent one
  // The image config's labels (Check with `with_labels`); for an index, those of its
  // linux/amd64 image.
  std::map<std::string, std::string> labels;
};

// One challenge of a WWW-Authenticate header: `Bearer realm="...",service="..."`.
struct Challenge {
  std::string scheme;                         // lowercase: "basic", "bearer"
  std::map<std::string, std::string> params;  // names lowercase
};
// Parses a WWW-Authenticate value (RFC 7235: auth-params with quoted strings). nullopt if
// it is not one.
std::optional<Challenge> ParseChallenge(std::string_view header);

class RegistryClient {
 public:
  struct Options {
    absl::Duration connect_timeout = absl::Seconds(10);
    absl::Duration request_timeout = absl::Seconds(30);
    std::string user_agent = "kmm-operator";
  };
  explicit RegistryClient(Options options, Clock& clock = RealClock());
  RegistryClient() : RegistryClient(Options{}) {}

  // Whether `image` exists. An absent image is a successful answer (exists == false);
  // errors are for answers that say nothing about it: the registry unreachable
  // (Unavailable), credentials refused (PermissionDenied / Unauthenticated), a server
  // error. Messages name the image and what to fix. `with_labels` reads the image's labels
  // too (GET manifest, then the config blob) instead of one HEAD.
  absl::StatusOr<ImageStatus> Check(const ImageReference& image,
                                    const std::optional<Credentials>& credentials,
                                    const Transport& transport, bool with_labels = false);

  // How many HTTP requests were sent (for tests and metrics).
  int requests() const;

 private:
  struct Response {
    long status = 0;
    std::map<std::string, std::string> headers;  // names lowercase; last value wins
    std::string body;
  };
  absl::StatusOr<Response> Send(std::string_view method, const std::string& url,
                                const std::string& authorization, const Transport& transport);
  // One request for `path` under /v2/<repository>, authenticating as the registry's
  // challenge asks (tokens cached). Returns any answer but 401; errors when unreachable or
  // refused.
  absl::StatusOr<Response> Exchange(const ImageReference& image, std::string_view method,
                                    const std::string& path,
                                    const std::optional<Credentials>& credentials,
                                    const Transport& transport);
  absl::StatusOr<std::string> FetchToken(const Challenge& challenge, const ImageReference& image,
                                         const std::optional<Credentials>& credentials,
                                         const Transport& transport);

  const Options options_;
  Clock& clock_;
  mutable absl::Mutex mu_;
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  struct CachedToken {
    std::string authorization;
    absl::Time expires;
  };
  // Keyed by host, repository and the credentials (user and password) it was issued for.
  std::map<std::string, CachedToken> tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kmm::registry

#endif  // KMM_OPERATOR_REGISTRY_REGISTRY_CLIENT_H_
