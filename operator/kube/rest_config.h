// Where the API server is and how to authenticate to it: from a kubeconfig file (current
// context, client certificates, tokens or an exec credential plugin, CA data or file) or from
// inside a pod (service account token, CA bundle, KUBERNETES_SERVICE_HOST/PORT). Used by
// CurlKubeClient.
#ifndef KMM_OPERATOR_KUBE_REST_CONFIG_H_
#define KMM_OPERATOR_KUBE_REST_CONFIG_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "operator/kube/exec_credential_provider.h"

namespace kmm::kube {

struct RestConfig {
  std::string server;           // https://host:port, no trailing slash
  std::string ca_pem;           // CA bundle to trust; empty: the system's
  std::string client_cert_pem;  // client certificate authentication, both or neither
  std::string client_key_pem;
  std::string token;       // a fixed bearer token
  std::string token_file;  // a bearer token re-read as it rotates (wins over `token`)
  // users[].user.exec: a plugin gives the token or client certificate (which then win over
  // the fields above). Shared by copies of this config, so they share its cache.
  std::shared_ptr<ExecCredentialProvider> exec_credentials;
  bool insecure_skip_tls_verify = false;
  std::string default_namespace = "default";
  std::string source;  // where this came from, for messages
};

// Reads the kubeconfig at `path` and resolves `context` (empty: its current-context).
// Relative file references resolve against the file's directory, as kubectl does. An exec
// plugin is not run here, only set up (RestConfig::exec_credentials), with the real
// process runner and clock.
absl::StatusOr<RestConfig> LoadKubeconfig(const std::string& path, std::string_view context = "");

// The same from text; `path` names the source in errors and anchors relative paths.
absl::StatusOr<RestConfig> ParseKubeconfig(std::string_view text, const std::string& path,
                                           std::string_view context = "");

// In-cluster configuration. `service_account_dir` holds token, ca.crt and namespace
// (/var/run/secrets/kubernetes.io/serviceaccount in a pod).
struct InClusterEnvironment {
  std::string service_host;  // $KUBERNETES_SERVICE_HOST
  std::string service_port;  // $KUBERNETES_SERVICE_PORT
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  static InClusterEnvironment FromProcess();
};
absl::StatusOr<RestConfig> InClusterConfig(const InClusterEnvironment& environment);

// What kmm-operator uses: `kubeconfig_flag` if given, else $KUBECONFIG, else the in-cluster
// configuration, else ~/.kube/config; the error lists what was tried.
absl::StatusOr<RestConfig> LoadRestConfig(const std::string& kubeconfig_flag);

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_REST_CONFIG_H_
