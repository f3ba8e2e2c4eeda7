#include "operator/kube/rest_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "common/status.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "operator/kube/yaml.h"

namespace kmm::kube {
namespace {

using nlohmann::json;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, fmt::format("cannot read {} {}", what, path));
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// Reads an optional string field of a kubeconfig object; a non-string is an error naming it.
absl::Status StringField(const json& object, std::string_view key, const std::string& path,
                         std::string* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(fmt::format("{}.{}: expected a string", path, key));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

// Finds the entry called `name` in a kubeconfig list (clusters, users, contexts) and returns
// its inner object (`cluster`, `user`, `context`).
absl::StatusOr<json> NamedEntry(const json& config, std::string_view list, std::string_view inner,
                                const std::string& name, const std::string& source) {
  auto entries = config.find(list);
  if (entries != config.end() && !entries->is_null() && !entries->is_array()) {
    return absl::InvalidArgumentError(fmt::format("{}: {}: expected a list", source, list));
  }
  if (entries != config.end() && entries->is_array()) {
    for (size_t i = 0; i < entries->size(); ++i) {
      const json& entry = (*entries)[i];
      if (!entry.is_object() || entry.value("name", json()) != name) continue;
      auto body = entry.find(inner);
      if (body == entry.end() || !body->is_object()) {
        return absl::InvalidArgumentError(
            fmt::format("{}: {}[{}] ({}): has no {} object", source, list, i, name, inner));
      }
      return *body;
    }
  }
  return absl::NotFoundError(fmt::format("{}: no entry named \"{}\" under {}", source, name, list));
}

// `value` (inline base64 data) or the file named by `file_value`, relative to `base_dir`.
absl::StatusOr<std::string> DataOrFile(const json& object, std::string_view data_key,
                                       std::string_view file_key, const std::string& path,
                                       const std::filesystem::path& base_dir) {
  std::string data, file;
  RETURN_IF_ERROR(StringField(object, data_key, path, &data));
  RETURN_IF_ERROR(StringField(object, file_key, path, &file));
  if (!data.empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(ToAbsl(data), &decoded)) {
      return absl::InvalidArgumentError(
          fmt::format("{}.{}: not valid base64; it must hold the PEM file base64-encoded "
                      "(base64 -w0 FILE)",
                      path, data_key));
    }
    return decoded;
  }
  if (!file.empty()) {
    std::filesystem::path full = file;
    if (full.is_relative()) full = base_dir / full;
    absl::StatusOr<std::string> content = ReadWholeFile(full, fmt::format("{}.{}", path, file_key));
    if (!content.ok()) return content.status();
    return *content;
  }
  return std::string();
}

// spec.cluster of an exec plugin's KUBERNETES_EXEC_INFO: the cluster as the kubeconfig
// gives it, with the CA inline (read from certificate-authority if need be) and the
// cluster's client.authentication.k8s.io/exec extension as `config`.
json ExecClusterInfo(const json& cluster, const RestConfig& rest) {
  json info = {{"server", rest.server}};
  for (const char* key : {"tls-server-name", "proxy-url"}) {
    if (auto it = cluster.find(key); it != cluster.end() && it->is_string()) info[key] = *it;
  }
  for (const char* key : {"insecure-skip-tls-verify", "disable-compression"}) {
    if (auto it = cluster.find(key); it != cluster.end() && it->is_boolean()) info[key] = *it;
  }
  if (!rest.ca_pem.empty()) {
    std::string encoded;
    absl::Base64Escape(ToAbsl(rest.ca_pem), &encoded);
    info["certificate-authority-data"] = encoded;
  }
  if (auto extensions = cluster.find("extensions");
      extensions != cluster.end() && extensions->is_array()) {
    for (const json& extension : *extensions) {
      if (extension.is_object() &&
          extension.value("name", json()) == "client.authentication.k8s.io/exec" &&
          extension.contains("extension")) {
        info["config"] = extension["extension"];
      }
    }
  }
  return info;
}

}  // namespace

absl::StatusOr<RestConfig> ParseKubeconfig(std::string_view text, const std::string& path,
                                           std::string_view context_override) {
  ASSIGN_OR_RETURN(json config, ParseYaml(text, path));
  if (!config.is_object()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: not a kubeconfig (expected a mapping "
                    "with clusters, users and contexts)",
                    path));
  }
  const std::filesystem::path base_dir = std::filesystem::path(path).parent_path();
  std::string context_name(context_override);
  if (context_name.empty()) {
    RETURN_IF_ERROR(StringField(config, "current-context", path, &context_name));
  }
  if (context_name.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: current-context is not set; set it (kubectl config use-context NAME) or pass a "
        "context",
        path));
  }
  ASSIGN_OR_RETURN(json context, NamedEntry(config, "contexts", "context", context_name, path));
  const std::string context_path = fmt::format("{}: contexts[{}].context", path, context_name);
  std::string cluster_name, user_name;
  RestConfig rest;
  rest.source = fmt::format("kubeconfig {} (context {})", path, context_name);
  RETURN_IF_ERROR(StringField(context, "cluster", context_path, &cluster_name));
  RETURN_IF_ERROR(StringField(context, "user", context_path, &user_name));
  RETURN_IF_ERROR(StringField(context, "namespace", context_path, &rest.default_namespace));
  if (rest.default_namespace.empty()) rest.default_namespace = "default";
  if (cluster_name.empty()) {
    return absl::InvalidArgumentError(fmt::format("{}.cluster: not set", context_path));
  }

  ASSIGN_OR_RETURN(json cluster, NamedEntry(config, "clusters", "cluster", cluster_name, path));
  const std::string cluster_path = fmt::format("{}: clusters[{}].cluster", path, cluster_name);
  RETURN_IF_ERROR(StringField(cluster, "server", cluster_path, &rest.server));
  if (rest.server.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("{}.server: not set; it must be the API server's URL", cluster_path));
  }
  if (rest.server.rfind("https://", 0) != 0 && rest.server.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(
        fmt::format("{}.server: \"{}\" is not an http(s):// URL", cluster_path, rest.server));
  }
  while (!rest.server.empty() && rest.server.back() == '/') rest.server.pop_back();
  ASSIGN_OR_RETURN(rest.ca_pem, DataOrFile(cluster, "certificate-authority-data",
                                           "certificate-authority", cluster_path, base_dir));
  if (auto insecure = cluster.find("insecure-skip-tls-verify"); insecure != cluster.end()) {
    if (!insecure->is_boolean()) {
      return absl::InvalidArgumentError(
          fmt::format("{}.insecure-skip-tls-verify: expected true or false", cluster_path));
    }
    rest.insecure_skip_tls_verify = insecure->get<bool>();
  }

  if (user_name.empty()) return rest;  // anonymous
  ASSIGN_OR_RETURN(json user, NamedEntry(config, "users", "user", user_name, path));
  const std::string user_path = fmt::format("{}: users[{}].user", path, user_name);
  if (user.contains("auth-provider")) {
    // Kubernetes itself dropped these (gcp, azure) in 1.26 for exec plugins.
    return absl::UnimplementedError(fmt::format(
        "{}.auth-provider: auth-provider plugins are not supported (kubectl dropped them too); "
        "use the exec credential plugin that replaced it (gke-gcloud-auth-plugin on GKE, "
        "kubelogin on AKS), a token or a client certificate",
        user_path));
  }
  ASSIGN_OR_RETURN(rest.client_cert_pem, DataOrFile(user, "client-certificate-data",
                                                    "client-certificate", user_path, base_dir));
  ASSIGN_OR_RETURN(rest.client_key_pem,
                   DataOrFile(user, "client-key-data", "client-key", user_path, base_dir));
  if (rest.client_cert_pem.empty() != rest.client_key_pem.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: has a client {} but no client {}; give both (client-certificate[-data] and "
        "client-key[-data])",
        user_path, rest.client_cert_pem.empty() ? "key" : "certificate",
        rest.client_cert_pem.empty() ? "certificate" : "key"));
  }
  RETURN_IF_ERROR(StringField(user, "token", user_path, &rest.token));
  std::string token_file;
  RETURN_IF_ERROR(StringField(user, "tokenFile", user_path, &token_file));
  if (!token_file.empty()) {
    std::filesystem::path full = token_file;
    if (full.is_relative()) full = base_dir / full;
    rest.token_file = full;
  }
  if (auto exec = user.find("exec"); exec != user.end() && !exec->is_null()) {
    if (!rest.token.empty() || !rest.token_file.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: has both exec and token{}; keep one of them", user_path,
                      rest.token_file.empty() ? "" : "File"));
    }
    if (!exec->is_object()) {
      return absl::InvalidArgumentError(fmt::format("{}.exec: expected a mapping", user_path));
    }
    ASSIGN_OR_RETURN(ExecConfig exec_config,
                     ParseExecConfig(*exec, fmt::format("kubeconfig {}, user {}", path, user_name),
                                     base_dir.string()));
    exec_config.cluster = ExecClusterInfo(cluster, rest);
    rest.exec_credentials = std::make_shared<ExecCredentialProvider>(std::move(exec_config));
  }
  if (user.contains("username") || user.contains("password")) {
    return absl::UnimplementedError(fmt::format(
        "{}: basic authentication (username/password) is not supported; use a token or a "
        "client certificate",
        user_path));
  }
  return rest;
}

absl::StatusOr<RestConfig> LoadKubeconfig(const std::string& path, std::string_view context) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path, "kubeconfig"));
  return ParseKubeconfig(text, path, context);
}

InClusterEnvironment InClusterEnvironment::FromProcess() {
  InClusterEnvironment environment;
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST")) environment.service_host = host;
  if (const char* port = std::getenv("KUBERNETES_SERVICE_PORT")) environment.service_port = port;
  return environment;
}

absl::StatusOr<RestConfig> InClusterConfig(const InClusterEnvironment& environment) {
  if (environment.service_host.empty() || environment.service_port.empty()) {
    return absl::FailedPreconditionError(
        "not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
  }
  RestConfig rest;
  rest.source = "in-cluster service account";
  // An IPv6 service host needs brackets in a URL.
  const bool ipv6 = environment.service_host.find(':') != std::string::npos;
  rest.server = fmt::format("https://{}{}{}:{}", ipv6 ? "[" : "", environment.service_host,
                            ipv6 ? "]" : "", environment.service_port);
  const std::string dir = environment.service_account_dir;
  rest.token_file = dir + "/token";
  ASSIGN_OR_RETURN(std::string token, ReadWholeFile(rest.token_file, "service account token"));
  if (token.empty()) {
    return absl::FailedPreconditionError(
        fmt::format("service account token {} is empty", rest.token_file));
  }
  ASSIGN_OR_RETURN(rest.ca_pem, ReadWholeFile(dir + "/ca.crt", "service account CA bundle"));
  if (absl::StatusOr<std::string> ns = ReadWholeFile(dir + "/namespace", "namespace");
      ns.ok() && !ns->empty()) {
    rest.default_namespace = *ns;
  }
  return rest;
}

absl::StatusOr<RestConfig> LoadRestConfig(const std::string& kubeconfig_flag) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag);
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    // Like kubectl, KUBECONFIG may list several files; we take the first that exists.
    std::stringstream list(env);
    std::string file;
    while (std::getline(list, file, ':')) {
      if (!file.empty() && std::filesystem::exists(file)) return LoadKubeconfig(file);
    }
    return absl::NotFoundError(fmt::format("KUBECONFIG={}: none of these files exists", env));
  }
  InClusterEnvironment environment = InClusterEnvironment::FromProcess();
  if (!environment.service_host.empty()) return InClusterConfig(environment);
  if (const char* home = std::getenv("HOME")) {
    std::string file = std::string(home) + "/.kube/config";
    if (std::filesystem::exists(file)) return LoadKubeconfig(file);
  }
  return absl::NotFoundError(
      "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod "
      "(KUBERNETES_SERVICE_HOST); ~/.kube/config does not exist either");
}

}  // namespace kmm::kube
