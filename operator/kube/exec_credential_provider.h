// Credentials from a kubeconfig credential plugin (`users[].user.exec`), run the way kubectl
// (client-go) runs them: EKS (`aws eks get-token`), GKE (`gke-gcloud-auth-plugin`), AKS
// (`kubelogin`) and any program that prints a client.authentication.k8s.io/v1 or v1beta1
// ExecCredential.
//
// The provider runs the plugin with KUBERNETES_EXEC_INFO set (never interactive: stdin is not
// connected), parses the ExecCredential it prints (a bearer token, or a client certificate and
// key, maybe with an expiry) and caches it: until shortly before it expires or, without an
// expiry, until the API server answers 401, when CurlKubeClient calls Refresh once and
// retries with what it gets. Thread-safe: one plugin run at a time, and all the requests that
// were refused with the same credential share one re-run. The plugin runs through a
// ProcessRunner (subprocess.h) with a timeout, so a hung plugin cannot hang the operator.
#ifndef KMM_OPERATOR_KUBE_EXEC_CREDENTIAL_PROVIDER_H_
#define KMM_OPERATOR_KUBE_EXEC_CREDENTIAL_PROVIDER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "nlohmann/json.hpp"
#include "operator/kube/subprocess.h"

namespace kmm::kube {

inline constexpr std::string_view kExecApiV1 = "client.authentication.k8s.io/v1";
inline constexpr std::string_view kExecApiV1beta1 = "client.authentication.k8s.io/v1beta1";

// A kubeconfig's `exec` section, checked, plus where it came from.
struct ExecConfig {
  std::string api_version;  // kExecApiV1 or kExecApiV1beta1
  std::string command;      // as written: a name looked up in PATH, or a path
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the operator's environment
  std::string install_hint;                              // shown when `command` is not found
  bool provide_cluster_info = false;
  // spec.cluster of KUBERNETES_EXEC_INFO (server, certificate-authority-data, ...), sent
  // when provide_cluster_info is set.
  nlohmann::json cluster = nlohmann::json::object();
  std::string base_dir;  // the kubeconfig's directory: relative commands resolve against it
  std::string origin;    // "kubeconfig FILE, user NAME", for messages
};

// Reads `exec` (the object under users[].user.exec). `origin` names the kubeconfig and user;
// `base_dir` is the kubeconfig's directory. Refuses interactiveMode: Always (the operator
// never has a terminal) and API versions other than v1 and v1beta1.
absl::StatusOr<ExecConfig> ParseExecConfig(const nlohmann::json& exec, std::string origin,
                                           std::string base_dir);

// What a plugin run gave.
struct ExecCredential {
  std::string token;            // a bearer token, or
  std::string client_cert_pem;  // a client certificate and its key (both or neither)
  std::string client_key_pem;
  std::optional<absl::Time> expiry;  // none: valid until the API server refuses it
  uint64_t generation = 0;           // which run of the plugin gave it (1, 2, ...)
};

// The value of KUBERNETES_EXEC_INFO for `config`: an ExecCredential with spec.interactive
// false and, when provide_cluster_info is set, spec.cluster.
std::string ExecInfoJson(const ExecConfig& config);

// Parses what the plugin printed on stdout. Errors name `config.origin` and what is wrong,
// never the output itself (it may hold secrets).
absl::StatusOr<ExecCredential> ParseExecCredential(std::string_view output,
                                                   const ExecConfig& config);

struct ExecProviderOptions {
  absl::Duration timeout = absl::Seconds(60);  // a plugin run is killed after this
  // A credential is replaced this long before its expiry, so a request does not go out with
  // one that expires on the way.
  absl::Duration refresh_before_expiry = absl::Seconds(5);
};

class ExecCredentialProvider {
 public:
  explicit ExecCredentialProvider(ExecConfig config, ProcessRunner& runner = RealProcessRunner(),
                                  Clock& clock = RealClock(), ExecProviderOptions options = {});

  // The cached credential, or a new one from the plugin when there is none yet or it is
  // about to expire.
  absl::StatusOr<std::shared_ptr<const ExecCredential>> Get();

  // The API server refused `rejected` (401): runs the plugin again, unless another thread
  // already replaced that credential, and returns the new one.
  absl::StatusOr<std::shared_ptr<const ExecCredential>> Refresh(const ExecCredential& rejected);

  // Whether the command can be found (PATH or the kubeconfig's directory) and run, without
  // running it: a missing plugin is reported when the client is created, with the install
  // hint.
  absl::Status CheckCommand() const;

  const ExecConfig& config() const { return config_; }

 private:
  absl::StatusOr<std::string> ResolveCommand() const;
  absl::StatusOr<std::shared_ptr<const ExecCredential>> RunPlugin()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // "kubeconfig F, user U: credential plugin CMD", the start of every error.
  std::string Describe() const;

  const ExecConfig config_;
  ProcessRunner& runner_;
  Clock& clock_;
  const ExecProviderOptions options_;

  // Held while the plugin runs: the other threads wait for its result instead of running
  // it too.
  absl::Mutex mu_;
  std::shared_ptr<const ExecCredential> current_ ABSL_GUARDED_BY(mu_);
  uint64_t runs_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_EXEC_CREDENTIAL_PROVIDER_H_
