#include "operator/kube/rest_config.h"

#include "absl/strings/escaping.h"
#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::kube {
namespace {

using ::testing::HasSubstr;

std::string Base64(std::string_view text) {
  std::string out;
  absl::Base64Escape(ToAbsl(text), &out);
  return out;
}

std::string Kubeconfig(std::string_view cluster, std::string_view user,
                       std::string_view current = "ctx") {
  return fmt::format(R"(apiVersion: v1
kind: Config
current-context: {}
contexts:
- name: ctx
  context: {{cluster: c, user: u, namespace: kmm-system}}
- name: other
  context: {{cluster: c}}
clusters:
- name: c
  cluster:
{}
users:
- name: u
  user:
{}
)",
                     current, cluster, user);
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(KubeconfigTest, ReadsClientCertificateUserWithInlineData) {
  absl::StatusOr<RestConfig> config = ParseKubeconfig(
      Kubeconfig(fmt::format("    server: https://127.0.0.1:6443/\n"
                             "    certificate-authority-data: {}",
                             Base64("CA PEM")),
                 fmt::format("    client-certificate-data: {}\n    client-key-data: {}",
                             Base64("CERT PEM"), Base64("KEY PEM"))),
      "/k/config");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://127.0.0.1:6443");
  EXPECT_EQ(config->ca_pem, "CA PEM");
  EXPECT_EQ(config->client_cert_pem, "CERT PEM");
  EXPECT_EQ(config->client_key_pem, "KEY PEM");
  EXPECT_EQ(config->default_namespace, "kmm-system");
  EXPECT_FALSE(config->insecure_skip_tls_verify);
}

TEST(KubeconfigTest, ResolvesFilesRelativeToTheKubeconfig) {
  testing::TempDir dir;
  dir.WriteFile("pki/ca.crt", "CA FROM FILE");
  dir.WriteFile("pki/token", "abc");
  const std::string path = dir.WriteFile(
      "config", Kubeconfig("    server: https://api:6443\n    certificate-authority: pki/ca.crt",
                           "    tokenFile: pki/token"));
  absl::StatusOr<RestConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_pem, "CA FROM FILE");
  EXPECT_EQ(config->token_file, dir.Join("pki/token"));
}

TEST(KubeconfigTest, TokenUserAndInsecureCluster) {
  absl::StatusOr<RestConfig> config =
      ParseKubeconfig(Kubeconfig("    server: https://api:6443\n    insecure-skip-tls-verify: true",
                                 "    token: s3cr3t"),
                      "config");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->token, "s3cr3t");
  EXPECT_TRUE(config->insecure_skip_tls_verify);
}

TEST(KubeconfigTest, AnExplicitContextWinsOverCurrentContext) {
  absl::StatusOr<RestConfig> config = ParseKubeconfig(
      Kubeconfig("    server: https://api:6443", "    token: t"), "config", "other");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->token, "");  // the other context has no user
  EXPECT_EQ(config->default_namespace, "default");
}

struct BadKubeconfig {
  std::string name;
  std::string text;
  std::string expected;  // part of the error message
};

class KubeconfigErrorTest : public ::testing::TestWithParam<BadKubeconfig> {};

TEST_P(KubeconfigErrorTest, NamesTheProblem) {
  absl::StatusOr<RestConfig> config = ParseKubeconfig(GetParam().text, "/home/me/.kube/config");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr(GetParam().expected));
  EXPECT_THAT(Message(config.status()), HasSubstr("/home/me/.kube/config"));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, KubeconfigErrorTest,
    ::testing::Values(
        BadKubeconfig{"NotYaml", "clusters: [", "not valid YAML"},
        BadKubeconfig{"NotAMapping", "- a\n- b\n", "not a kubeconfig"},
        BadKubeconfig{"NoCurrentContext", "clusters: []\n", "current-context is not set"},
        BadKubeconfig{"UnknownContext", Kubeconfig("    server: https://a", "    token: t", "nope"),
                      "no entry named \"nope\" under contexts"},
        BadKubeconfig{"MissingServer",
                      Kubeconfig("    insecure-skip-tls-verify: true", "    token: t"),
                      "clusters[c].cluster.server: not set"},
        BadKubeconfig{"ServerNotAUrl", Kubeconfig("    server: api:6443", "    token: t"),
                      "is not an http(s):// URL"},
        BadKubeconfig{"BadBase64",
                      Kubeconfig("    server: https://a\n    certificate-authority-data: '%%%'",
                                 "    token: t"),
                      "certificate-authority-data: not valid base64"},
        BadKubeconfig{
            "MissingCaFile",
            Kubeconfig("    server: https://a\n    certificate-authority: /nonexistent/ca.crt",
                       "    token: t"),
            "cannot read"},
        BadKubeconfig{"CertWithoutKey",
                      Kubeconfig("    server: https://a", "    client-certificate-data: Q0VSVA=="),
                      "has a client certificate but no client key"},
        BadKubeconfig{"ExecWithoutApiVersion",
                      Kubeconfig("    server: https://a", "    exec: {command: aws}"),
                      "user u: exec.apiVersion: not set; it must be "
                      "client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1"},
        BadKubeconfig{"ExecAlpha",
                      Kubeconfig("    server: https://a",
                                 "    exec: {apiVersion: client.authentication.k8s.io/v1alpha1, "
                                 "command: aws}"),
                      "\"client.authentication.k8s.io/v1alpha1\" is not supported"},
        BadKubeconfig{"ExecWithoutCommand",
                      Kubeconfig("    server: https://a",
                                 "    exec: {apiVersion: client.authentication.k8s.io/v1}"),
                      "exec.command"},
        BadKubeconfig{"ExecInteractiveAlways",
                      Kubeconfig("    server: https://a",
                                 "    exec: {apiVersion: client.authentication.k8s.io/v1, "
                                 "command: kubelogin, interactiveMode: Always}"),
                      "exec.interactiveMode: Always, but kmm-operator never has a terminal to "
                      "prompt on; set it to IfAvailable or Never"},
        BadKubeconfig{"ExecEnvWithoutName",
                      Kubeconfig("    server: https://a",
                                 "    exec: {apiVersion: client.authentication.k8s.io/v1, "
                                 "command: aws, env: [{value: x}]}"),
                      "exec.env[0].name"},
        BadKubeconfig{"ExecAndToken",
                      Kubeconfig("    server: https://a",
                                 "    token: t\n"
                                 "    exec: {apiVersion: client.authentication.k8s.io/v1, "
                                 "command: aws}"),
                      "users[u].user: has both exec and token; keep one of them"},
        BadKubeconfig{"AuthProvider",
                      Kubeconfig("    server: https://a", "    auth-provider: {name: gcp}"),
                      "users[u].user.auth-provider: auth-provider plugins are not supported"},
        BadKubeconfig{"InsecureNotABool",
                      Kubeconfig("    server: https://a\n    insecure-skip-tls-verify: maybe",
                                 "    token: t"),
                      "insecure-skip-tls-verify: expected true or false"},
        BadKubeconfig{"TokenNotAString", Kubeconfig("    server: https://a", "    token: [1]"),
                      "users[u].user.token: expected a string"}),
    [](const ::testing::TestParamInfo<BadKubeconfig>& param_info) {
      return param_info.param.name;
    });

TEST(KubeconfigTest, SetsUpAnExecPluginWithoutRunningIt) {
  absl::StatusOr<RestConfig> config =
      ParseKubeconfig(Kubeconfig(fmt::format("    server: https://api.example:443/\n"
                                             "    certificate-authority-data: {}\n"
                                             "    tls-server-name: api.internal\n"
                                             "    extensions:\n"
                                             "    - name: client.authentication.k8s.io/exec\n"
                                             "      extension: {{audience: kmm}}",
                                             Base64("CA PEM")),
                                 R"(    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: bin/get-token
      args: [--cluster, c1]
      env: [{name: REGION, value: eu-west-1}]
      installHint: install get-token from your cloud's CLI
      provideClusterInfo: true
      interactiveMode: IfAvailable)"),
                      "/home/me/.kube/config");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_NE(config->exec_credentials, nullptr);
  const ExecConfig& exec = config->exec_credentials->config();
  EXPECT_EQ(exec.api_version, kExecApiV1beta1);
  EXPECT_EQ(exec.command, "bin/get-token");
  EXPECT_THAT(exec.args, ::testing::ElementsAre("--cluster", "c1"));
  ASSERT_EQ(exec.env.size(), 1u);
  EXPECT_EQ(exec.env[0].first, "REGION");
  EXPECT_EQ(exec.env[0].second, "eu-west-1");
  EXPECT_EQ(exec.install_hint, "install get-token from your cloud's CLI");
  EXPECT_TRUE(exec.provide_cluster_info);
  EXPECT_EQ(exec.base_dir, "/home/me/.kube");
  EXPECT_EQ(exec.origin, "kubeconfig /home/me/.kube/config, user u");
  // spec.cluster of KUBERNETES_EXEC_INFO: the cluster as configured, the CA inline.
  EXPECT_EQ(exec.cluster, nlohmann::json({{"server", "https://api.example:443"},
                                          {"certificate-authority-data", Base64("CA PEM")},
                                          {"tls-server-name", "api.internal"},
                                          {"config", {{"audience", "kmm"}}}}));
  EXPECT_EQ(config->token, "");
  // Copies share one provider, hence one cache.
  RestConfig copy = *config;
  EXPECT_EQ(copy.exec_credentials, config->exec_credentials);
}

TEST(KubeconfigTest, ExecClusterInfoCarriesACaReadFromAFile) {
  testing::TempDir dir;
  dir.WriteFile("ca.crt", "CA FROM FILE");
  const std::string path = dir.WriteFile(
      "config", Kubeconfig("    server: https://api:6443\n    certificate-authority: ca.crt\n"
                           "    insecure-skip-tls-verify: false",
                           "    exec: {apiVersion: client.authentication.k8s.io/v1, command: "
                           "aws, provideClusterInfo: true}"));
  absl::StatusOr<RestConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  const nlohmann::json& cluster = config->exec_credentials->config().cluster;
  EXPECT_EQ(cluster["certificate-authority-data"], Base64("CA FROM FILE"));
  EXPECT_EQ(cluster["insecure-skip-tls-verify"], false);
}

TEST(KubeconfigTest, MissingFileIsNamed) {
  absl::StatusOr<RestConfig> config = LoadKubeconfig("/nonexistent/kubeconfig");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr("/nonexistent/kubeconfig"));
}

TEST(InClusterConfigTest, ReadsServiceAccountFiles) {
  testing::TempDir dir;
  dir.WriteFile("sa/token", "tok");
  dir.WriteFile("sa/ca.crt", "CA");
  dir.WriteFile("sa/namespace", "kmm-system");
  InClusterEnvironment environment{"10.0.0.1", "443", dir.Join("sa")};
  absl::StatusOr<RestConfig> config = InClusterConfig(environment);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://10.0.0.1:443");
  EXPECT_EQ(config->token_file, dir.Join("sa/token"));
  EXPECT_EQ(config->ca_pem, "CA");
  EXPECT_EQ(config->default_namespace, "kmm-system");
}

TEST(InClusterConfigTest, BracketsAnIpv6Host) {
  testing::TempDir dir;
  dir.WriteFile("sa/token", "tok");
  dir.WriteFile("sa/ca.crt", "CA");
  absl::StatusOr<RestConfig> config = InClusterConfig({"fd00::1", "443", dir.Join("sa")});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://[fd00::1]:443");
}

TEST(InClusterConfigTest, ErrorsNameWhatIsMissing) {
  EXPECT_THAT(Message(InClusterConfig({"", "", "/x"}).status()),
              HasSubstr("KUBERNETES_SERVICE_HOST"));
  testing::TempDir dir;
  dir.WriteFile("sa/token", "tok");
  EXPECT_THAT(Message(InClusterConfig({"h", "1", dir.Join("sa")}).status()),
              HasSubstr("CA bundle"));
  EXPECT_THAT(Message(InClusterConfig({"h", "1", dir.Join("none")}).status()),
              HasSubstr("service account token"));
}

}  // namespace
}  // namespace kmm::kube
