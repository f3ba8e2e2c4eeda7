#include "operator/kube/exec_credential_provider.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "absl/strings/escaping.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace kmm::kube {
namespace {

using nlohmann::json;

// The last `max_bytes` of `text`, trimmed, for error messages (a plugin's stderr).
std::string Tail(std::string_view text, size_t max_bytes = 2048) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (text.size() <= max_bytes) return std::string(text);
  return "..." + std::string(text.substr(text.size() - max_bytes));
}

}  // namespace

absl::StatusOr<ExecConfig> ParseExecConfig(const json& exec, std::string origin,
                                           std::string base_dir) {
  ExecConfig config;
  config.origin = std::move(origin);
  config.base_dir = std::move(base_dir);
  JsonFields fields(exec, fmt::format("{}: exec", config.origin));
  RETURN_IF_ERROR(fields.Optional("apiVersion", &config.api_version));
  if (config.api_version != kExecApiV1 && config.api_version != kExecApiV1beta1) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: {}; it must be {} or {} (v1alpha1 is no longer supported by Kubernetes either)",
        fields.PathOf("apiVersion"),
        config.api_version.empty() ? "not set"
                                   : fmt::format("\"{}\" is not supported", config.api_version),
        kExecApiV1, kExecApiV1beta1));
  }
  RETURN_IF_ERROR(fields.Required("command", &config.command));
  if (config.command.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: empty; it must name the plugin program", fields.PathOf("command")));
  }
  RETURN_IF_ERROR(fields.Optional("args", &config.args));
  const json* env = nullptr;
  RETURN_IF_ERROR(fields.OptionalArray("env", &env));
  if (env != nullptr) {
    for (size_t i = 0; i < env->size(); ++i) {
      JsonFields entry((*env)[i], fmt::format("{}[{}]", fields.PathOf("env"), i));
      std::string name, value;
      RETURN_IF_ERROR(entry.Required("name", &name));
      RETURN_IF_ERROR(entry.Optional("value", &value));
      if (name.empty() || name.find('=') != std::string::npos) {
        return absl::InvalidArgumentError(
            fmt::format("{}.name: \"{}\" is not an environment variable name", entry.path(), name));
      }
      config.env.emplace_back(std::move(name), std::move(value));
    }
  }
  RETURN_IF_ERROR(fields.Optional("installHint", &config.install_hint));
  RETURN_IF_ERROR(fields.Optional("provideClusterInfo", &config.provide_cluster_info));
  std::string interactive_mode;
  RETURN_IF_ERROR(fields.Optional("interactiveMode", &interactive_mode));
  if (interactive_mode == "Always") {
    return absl::InvalidArgumentError(fmt::format(
        "{}: Always, but kmm-operator never has a terminal to prompt on; set it to "
        "IfAvailable or Never and log in beforehand (or use a plugin mode that needs no "
        "prompt, e.g. a service principal or workload identity)",
        fields.PathOf("interactiveMode")));
  }
  if (!interactive_mode.empty() && interactive_mode != "IfAvailable" &&
      interactive_mode != "Never") {
    return absl::InvalidArgumentError(
        fmt::format("{}: \"{}\" is not one of Never, IfAvailable, Always",
                    fields.PathOf("interactiveMode"), interactive_mode));
  }
  return config;
}

std::string ExecInfoJson(const ExecConfig& config) {
  json info = {{"apiVersion", config.api_version},
               {"kind", "ExecCredential"},
               {"spec", {{"interactive", false}}}};
  if (config.provide_cluster_info) info["spec"]["cluster"] = config.cluster;
  return info.dump();
}

absl::StatusOr<ExecCredential> ParseExecCredential(std::string_view output,
                                                   const ExecConfig& config) {
  const std::string prefix = fmt::format("{}: credential plugin {}", config.origin, config.command);
  json parsed = json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: its output is not an ExecCredential JSON object ({} bytes on stdout); a plugin "
        "must print only the ExecCredential on stdout (messages go to stderr)",
        prefix, output.size()));
  }
  const std::string api_version =
      parsed.value("apiVersion", json()).is_string() ? parsed["apiVersion"].get<std::string>() : "";
  if (api_version != config.api_version) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: it printed apiVersion \"{}\" but the kubeconfig's exec.apiVersion is \"{}\"; set "
        "exec.apiVersion to the version the plugin speaks",
        prefix, api_version, config.api_version));
  }
  if (parsed.value("kind", json()) != "ExecCredential") {
    return absl::InvalidArgumentError(
        fmt::format("{}: it printed kind {} instead of ExecCredential", prefix,
                    parsed.value("kind", json()).dump()));
  }
  auto status = parsed.find("status");
  if (status == parsed.end() || !status->is_object()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: its ExecCredential has no status object (status.token or "
                    "status.clientCertificateData and status.clientKeyData)",
                    prefix));
  }
  JsonFields fields(*status, prefix + ": status");
  ExecCredential credential;
  RETURN_IF_ERROR(fields.Optional("token", &credential.token));
  // PEM text, not base64 as in a kubeconfig.
  RETURN_IF_ERROR(fields.Optional("clientCertificateData", &credential.client_cert_pem));
  RETURN_IF_ERROR(fields.Optional("clientKeyData", &credential.client_key_pem));
  if (credential.client_cert_pem.empty() != credential.client_key_pem.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: status has {} but no {}; a client certificate needs both", prefix,
        credential.client_cert_pem.empty() ? "clientKeyData" : "clientCertificateData",
        credential.client_cert_pem.empty() ? "clientCertificateData" : "clientKeyData"));
  }
  if (credential.token.empty() && credential.client_cert_pem.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: status has neither token nor clientCertificateData and clientKeyData", prefix));
  }
  std::string expiry;
  RETURN_IF_ERROR(fields.Optional("expirationTimestamp", &expiry));
  if (!expiry.empty()) {
    absl::Time parsed_expiry;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, expiry, &parsed_expiry, &error)) {
      return absl::InvalidArgumentError(
          fmt::format("{}: status.expirationTimestamp \"{}\" is not an RFC 3339 time such as "
                      "2006-01-02T15:04:05Z ({})",
                      prefix, expiry, error));
    }
    credential.expiry = parsed_expiry;
  }
  return credential;
}

ExecCredentialProvider::ExecCredentialProvider(ExecConfig config, ProcessRunner& runner,
                                               Clock& clock, ExecProviderOptions options)
    : config_(std::move(config)), runner_(runner), clock_(clock), options_(options) {}

std::string ExecCredentialProvider::Describe() const {
  return fmt::format("{}: credential plugin {}", config_.origin, config_.command);
}

absl::StatusOr<std::string> ExecCredentialProvider::ResolveCommand() const {
  namespace fs = std::filesystem;
  auto not_found = [&](std::string_view where) {
    std::string message = fmt::format("{}: not found ({})", Describe(), where);
    message += config_.install_hint.empty() ? "; install it or fix exec.command in the kubeconfig"
                                            : fmt::format("; {}", Tail(config_.install_hint));
    return absl::NotFoundError(message);
  };
  // As kubectl: a command with a slash is a path (relative to the kubeconfig's directory),
  // a bare name is looked up in PATH.
  if (config_.command.find('/') != std::string::npos) {
    fs::path path = config_.command;
    if (path.is_relative()) path = fs::path(config_.base_dir) / path;
    if (access(path.c_str(), F_OK) != 0) return not_found(path.string());
    if (access(path.c_str(), X_OK) != 0) {
      return absl::PermissionDeniedError(
          fmt::format("{}: {} is not executable (chmod +x it)", Describe(), path.string()));
    }
    return path.string();
  }
  const char* path_env = std::getenv("PATH");
  const std::string search = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= search.size()) {
    size_t end = search.find(':', start);
    if (end == std::string::npos) end = search.size();
    const std::string dir = search.substr(start, end - start);
    start = end + 1;
    // Not the working directory (an empty or relative entry; kubectl refuses those too):
    // which program runs must not depend on where the operator was started.
    if (dir.empty() || dir.front() != '/') continue;
    const std::string candidate = dir + "/" + config_.command;
    std::error_code error;
    if (access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate, error)) {
      return candidate;
    }
  }
  return not_found(fmt::format("searched PATH={}", search));
}

absl::Status ExecCredentialProvider::CheckCommand() const { return ResolveCommand().status(); }

absl::StatusOr<std::shared_ptr<const ExecCredential>> ExecCredentialProvider::Get() {
  absl::MutexLock lock(&mu_);
  if (current_ != nullptr &&
      (!current_->expiry || clock_.Now() < *current_->expiry - options_.refresh_before_expiry)) {
    return current_;
  }
  return RunPlugin();
}

absl::StatusOr<std::shared_ptr<const ExecCredential>> ExecCredentialProvider::Refresh(
    const ExecCredential& rejected) {
  absl::MutexLock lock(&mu_);
  // Another thread got the same 401 and has already run the plugin: use what it got.
  if (current_ != nullptr && current_->generation != rejected.generation) return current_;
  spdlog::info("{}: the API server refused the credential (401); running the plugin again",
               Describe());
  current_ = nullptr;
  return RunPlugin();
}

absl::StatusOr<std::shared_ptr<const ExecCredential>> ExecCredentialProvider::RunPlugin() {
  ASSIGN_OR_RETURN(std::string path, ResolveCommand());
  ProcessSpec spec;
  spec.path = path;
  spec.timeout = options_.timeout;
  spec.argv.push_back(config_.command);
  spec.argv.insert(spec.argv.end(), config_.args.begin(), config_.args.end());
  // The operator's environment, then exec.env, then KUBERNETES_EXEC_INFO; later wins.
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text = *entry;
    const size_t equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    env[std::string(text.substr(0, equals))] = std::string(text.substr(equals + 1));
  }
  for (const auto& [name, value] : config_.env) env[name] = value;
  env["KUBERNETES_EXEC_INFO"] = ExecInfoJson(config_);
  for (const auto& [name, value] : env) spec.env.push_back(name + "=" + value);

  spdlog::debug("{}: running {}", Describe(), path);
  absl::StatusOr<ProcessResult> result = runner_.Run(spec);
  if (!result.ok()) {
    if (absl::IsNotFound(result.status())) {
      return absl::NotFoundError(fmt::format(
          "{}: {}{}", Describe(), result.status().message(),
          config_.install_hint.empty() ? "" : fmt::format("; {}", Tail(config_.install_hint))));
    }
    return Annotate(result.status(), Describe());
  }
  const std::string stderr_tail = Tail(result->stderr_text);
  if (result->timed_out) {
    return absl::DeadlineExceededError(fmt::format(
        "{}: did not finish within {} and was killed (is it waiting for a login? the operator "
        "cannot answer prompts){}",
        Describe(), absl::FormatDuration(options_.timeout),
        stderr_tail.empty() ? "" : fmt::format("; its stderr: {}", stderr_tail)));
  }
  if (result->term_signal != 0 || result->exit_code != 0) {
    return absl::UnavailableError(fmt::format(
        "{}: {}; {}", Describe(),
        result->term_signal != 0 ? fmt::format("killed by signal {}", result->term_signal)
                                 : fmt::format("exited with code {}", result->exit_code),
        stderr_tail.empty() ? "it printed nothing on stderr"
                            : fmt::format("its stderr: {}", stderr_tail)));
  }
  // Its messages on success (e.g. "token refreshed") go to our log, as kubectl passes them
  // through to its stderr.
  if (!stderr_tail.empty()) spdlog::info("{}: {}", Describe(), stderr_tail);
  ASSIGN_OR_RETURN(ExecCredential credential, ParseExecCredential(result->stdout_text, config_));
  credential.generation = ++runs_;
  current_ = std::make_shared<const ExecCredential>(std::move(credential));
  return current_;
}

}  // namespace kmm::kube
