// Exec credential plugins: KUBERNETES_EXEC_INFO, parsing what a plugin prints, and the
// provider running real shell scripts (arguments, environment, caching and expiry on a
// FakeClock, the re-run after a 401, timeouts, and each error a user can meet).
#include "operator/kube/exec_credential_provider.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::kube {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

ExecConfig V1Config(std::string command = "plugin") {
  ExecConfig config;
  config.api_version = std::string(kExecApiV1);
  config.command = std::move(command);
  config.origin = "kubeconfig /home/me/.kube/config, user eks-admin";
  return config;
}

TEST(ExecInfoTest, SaysNotInteractiveAndCarriesTheClusterOnlyWhenAskedTo) {
  ExecConfig config = V1Config();
  config.cluster = {{"server", "https://api:443"}, {"certificate-authority-data", "Q0E="}};
  EXPECT_EQ(json::parse(ExecInfoJson(config)),
            json({{"apiVersion", "client.authentication.k8s.io/v1"},
                  {"kind", "ExecCredential"},
                  {"spec", {{"interactive", false}}}}));
  config.provide_cluster_info = true;
  config.api_version = std::string(kExecApiV1beta1);
  json info = json::parse(ExecInfoJson(config));
  EXPECT_EQ(info["apiVersion"], "client.authentication.k8s.io/v1beta1");
  EXPECT_EQ(info["spec"]["cluster"]["server"], "https://api:443");
  EXPECT_EQ(info["spec"]["cluster"]["certificate-authority-data"], "Q0E=");
}

TEST(ParseExecCredentialTest, ReadsATokenWithAnExpiry) {
  absl::StatusOr<ExecCredential> credential = ParseExecCredential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
          "status":{"token":"k8s-aws-v1.abc","expirationTimestamp":"2030-01-02T03:04:05Z"}})",
      V1Config());
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_EQ(credential->token, "k8s-aws-v1.abc");
  ASSERT_TRUE(credential->expiry.has_value());
  EXPECT_EQ(*credential->expiry,
            absl::FromCivil(absl::CivilSecond(2030, 1, 2, 3, 4, 5), absl::UTCTimeZone()));
}

TEST(ParseExecCredentialTest, ReadsAClientCertificateAndFractionalOffsetTimes) {
  absl::StatusOr<ExecCredential> credential = ParseExecCredential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
          "status":{"clientCertificateData":"-----BEGIN CERTIFICATE-----\n",
                    "clientKeyData":"-----BEGIN PRIVATE KEY-----\n",
                    "expirationTimestamp":"2030-01-02T05:04:05.5+02:00"}})",
      V1Config());
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_EQ(credential->token, "");
  EXPECT_EQ(credential->client_cert_pem, "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(credential->client_key_pem, "-----BEGIN PRIVATE KEY-----\n");
  EXPECT_EQ(*credential->expiry,
            absl::FromCivil(absl::CivilSecond(2030, 1, 2, 3, 4, 5), absl::UTCTimeZone()) +
                absl::Milliseconds(500));
}

TEST(ParseExecCredentialTest, NoExpiryMeansUntilRefused) {
  absl::StatusOr<ExecCredential> credential = ParseExecCredential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
          "status":{"token":"t"}})",
      V1Config());
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_FALSE(credential->expiry.has_value());
}

struct BadOutput {
  std::string name;
  std::string output;
  std::string expected;
};

class ParseExecCredentialErrorTest : public ::testing::TestWithParam<BadOutput> {};

TEST_P(ParseExecCredentialErrorTest, NamesTheKubeconfigUserAndProblem) {
  absl::StatusOr<ExecCredential> credential =
      ParseExecCredential(GetParam().output, V1Config("aws"));
  ASSERT_FALSE(credential.ok());
  EXPECT_THAT(Message(credential.status()),
              HasSubstr("kubeconfig /home/me/.kube/config, user eks-admin: credential plugin aws"));
  EXPECT_THAT(Message(credential.status()), HasSubstr(GetParam().expected));
  // What the plugin printed may be a secret; messages never repeat it.
  EXPECT_THAT(Message(credential.status()), Not(HasSubstr("SECRET")));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, ParseExecCredentialErrorTest,
    ::testing::Values(
        BadOutput{"NotJson", "token: SECRET", "its output is not an ExecCredential JSON object"},
        BadOutput{"OtherApiVersion",
                  R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential",
                      "status":{"token":"SECRET"}})",
                  "it printed apiVersion \"client.authentication.k8s.io/v1beta1\" but the "
                  "kubeconfig's exec.apiVersion is \"client.authentication.k8s.io/v1\""},
        BadOutput{"OtherKind",
                  R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"Secret",
                      "status":{"token":"SECRET"}})",
                  "kind \"Secret\" instead of ExecCredential"},
        BadOutput{"NoStatus",
                  R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"})",
                  "has no status object"},
        BadOutput{"EmptyStatus",
                  R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                      "status":{}})",
                  "status has neither token nor clientCertificateData and clientKeyData"},
        BadOutput{"CertificateWithoutKey",
                  R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                      "status":{"clientCertificateData":"SECRET"}})",
                  "status has clientCertificateData but no clientKeyData"},
        BadOutput{"TokenNotAString",
                  R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                      "status":{"token":1}})",
                  "status.token"},
        BadOutput{"BadExpiry",
                  R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                      "status":{"token":"SECRET","expirationTimestamp":"tomorrow"}})",
                  "status.expirationTimestamp \"tomorrow\" is not an RFC 3339 time"}),
    [](const ::testing::TestParamInfo<BadOutput>& param_info) { return param_info.param.name; });

// A directory of plugin scripts; each counts its runs in runs/<name>.
class PluginTest : public ::testing::Test {
 protected:
  // Writes an executable shell script `name` with `body`.
  std::string Script(const std::string& name, const std::string& body) {
    const std::string path = dir_.WriteFile(name, "#!/bin/sh\n" + body);
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path;
  }
  // A plugin printing a v1 token "token-<run>", with $EXPIRY as its expiry when set.
  std::string TokenPlugin(const std::string& name) {
    return Script(name, fmt::format(R"(echo run >> {0}/runs
n=$(wc -l < {0}/runs)
exp=""
[ -n "$EXPIRY" ] && exp=",\"expirationTimestamp\":\"$EXPIRY\""
echo "{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"token-$n\"$exp}}}}"
)",
                                    dir_.path()));
  }
  int Runs() {
    std::ifstream in(dir_.Join("runs"));
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    return lines;
  }
  ExecConfig ConfigFor(const std::string& command) {
    ExecConfig config = V1Config(command);
    config.base_dir = dir_.path();
    return config;
  }

  testing::TempDir dir_;
  FakeClock clock_;
};

TEST_F(PluginTest, RunsThePluginWithItsArgumentsEnvironmentAndExecInfo) {
  Script("plugin", fmt::format(R"(printf '%s\n' "$@" > {0}/args
printf '%s' "$KUBERNETES_EXEC_INFO" > {0}/exec-info
printf '%s %s' "$REGION" "$KMM_TEST_FROM_OPERATOR" > {0}/env
if read -r line; then echo "stdin had data" > {0}/stdin; else echo "stdin at end" > {0}/stdin; fi
echo "refreshing the token" >&2
echo '{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"t1"}}}}'
)",
                               dir_.path()));
  setenv("KMM_TEST_FROM_OPERATOR", "inherited", 1);
  ExecConfig config = ConfigFor("./plugin");  // relative: against the kubeconfig's directory
  config.args = {"eks", "get-token", "--cluster-name", "prod one"};
  config.env = {{"REGION", "eu-west-1"}};
  config.provide_cluster_info = true;
  config.cluster = {{"server", "https://api:443"}};
  ExecCredentialProvider provider(config, RealProcessRunner(), clock_);
  absl::StatusOr<std::shared_ptr<const ExecCredential>> credential = provider.Get();
  unsetenv("KMM_TEST_FROM_OPERATOR");
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_EQ((*credential)->token, "t1");
  EXPECT_EQ((*credential)->generation, 1u);
  EXPECT_EQ(testing::ReadFile(dir_.Join("args")), "eks\nget-token\n--cluster-name\nprod one\n");
  EXPECT_EQ(testing::ReadFile(dir_.Join("env")), "eu-west-1 inherited");
  EXPECT_EQ(testing::ReadFile(dir_.Join("stdin")), "stdin at end\n");
  EXPECT_EQ(
      json::parse(testing::ReadFile(dir_.Join("exec-info"))),
      json({{"apiVersion", "client.authentication.k8s.io/v1"},
            {"kind", "ExecCredential"},
            {"spec", {{"interactive", false}, {"cluster", {{"server", "https://api:443"}}}}}}));
}

TEST_F(PluginTest, CachesTheCredentialUntilShortlyBeforeItExpires) {
  ExecConfig config = ConfigFor(TokenPlugin("plugin"));
  const absl::Time expiry = clock_.Now() + absl::Hours(1);
  config.env = {{"EXPIRY", absl::FormatTime(absl::RFC3339_sec, expiry, absl::UTCTimeZone())}};
  ExecCredentialProvider provider(config, RealProcessRunner(), clock_);
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<std::shared_ptr<const ExecCredential>> credential = provider.Get();
    ASSERT_TRUE(credential.ok()) << credential.status();
    EXPECT_EQ((*credential)->token, "token-1");
    clock_.Advance(absl::Minutes(10));
  }
  EXPECT_EQ(Runs(), 1);
  clock_.Advance(absl::Minutes(10) - absl::Seconds(14));
  EXPECT_EQ((*provider.Get())->token, "token-1");  // 14 s left: kept
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ((*provider.Get())->token, "token-2");  // 4 s left: replaced
  EXPECT_EQ(Runs(), 2);
}

TEST_F(PluginTest, WithoutExpiryKeepsTheCredentialUntilRefusedAndRefreshesOncePerRefusal) {
  ExecCredentialProvider provider(ConfigFor(TokenPlugin("plugin")), RealProcessRunner(), clock_);
  std::shared_ptr<const ExecCredential> first = *provider.Get();
  clock_.Advance(absl::Hours(24 * 365));
  EXPECT_EQ(*provider.Get(), first);
  EXPECT_EQ(Runs(), 1);
  absl::StatusOr<std::shared_ptr<const ExecCredential>> second = provider.Refresh(*first);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->token, "token-2");
  EXPECT_EQ((*second)->generation, 2u);
  // Another request refused with the first credential: it gets the second, no new run.
  EXPECT_EQ(*provider.Refresh(*first), *second);
  EXPECT_EQ(*provider.Get(), *second);
  EXPECT_EQ(Runs(), 2);
  EXPECT_EQ((*provider.Refresh(**second))->token, "token-3");
  EXPECT_EQ(Runs(), 3);
}

TEST_F(PluginTest, ThreadsAskingAtOnceShareOneRun) {
  ExecConfig config = ConfigFor(Script("plugin", fmt::format(R"(echo run >> {0}/runs
sleep 0.3
echo '{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"t"}}}}'
)",
                                                             dir_.path())));
  ExecCredentialProvider provider(config, RealProcessRunner(), clock_);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (provider.Get().ok()) ++ok;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(Runs(), 1);
}

TEST_F(PluginTest, FindsABareCommandInPath) {
  TokenPlugin("bin/kmm-test-get-token");
  const std::string old_path = std::getenv("PATH");
  setenv("PATH", (dir_.Join("bin") + ":" + old_path).c_str(), 1);
  ExecCredentialProvider provider(V1Config("kmm-test-get-token"), RealProcessRunner(), clock_);
  EXPECT_TRUE(provider.CheckCommand().ok());
  absl::StatusOr<std::shared_ptr<const ExecCredential>> credential = provider.Get();
  setenv("PATH", old_path.c_str(), 1);
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_EQ((*credential)->token, "token-1");
}

TEST_F(PluginTest, RelativePathEntriesAreNotSearched) {
  TokenPlugin("bin/kmm-test-get-token");
  const std::string old_path = std::getenv("PATH");
  const std::filesystem::path old_dir = std::filesystem::current_path();
  std::filesystem::current_path(dir_.path());
  setenv("PATH", ":bin", 1);
  ExecCredentialProvider provider(V1Config("kmm-test-get-token"), RealProcessRunner(), clock_);
  absl::Status status = provider.CheckCommand();
  setenv("PATH", old_path.c_str(), 1);
  std::filesystem::current_path(old_dir);
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
}

TEST_F(PluginTest, AMissingCommandIsNamedWithTheInstallHint) {
  ExecConfig config = V1Config("kmm-no-such-plugin");
  config.install_hint = "kmm-no-such-plugin is needed to use this kubeconfig; see example.org\n";
  ExecCredentialProvider provider(config, RealProcessRunner(), clock_);
  for (const absl::Status& status : {provider.CheckCommand(), provider.Get().status()}) {
    EXPECT_TRUE(absl::IsNotFound(status)) << status;
    EXPECT_THAT(Message(status), HasSubstr("kubeconfig /home/me/.kube/config, user eks-admin: "
                                           "credential plugin kmm-no-such-plugin: not found "
                                           "(searched PATH="));
    EXPECT_THAT(Message(status), HasSubstr("; kmm-no-such-plugin is needed to use this "
                                           "kubeconfig; see example.org"));
  }
  ExecCredentialProvider relative(ConfigFor("bin/missing"), RealProcessRunner(), clock_);
  EXPECT_THAT(Message(relative.CheckCommand()),
              HasSubstr(fmt::format("not found ({}/bin/missing); install it or fix exec.command",
                                    dir_.path())));
}

TEST_F(PluginTest, ANonExecutableCommandSaysSo) {
  const std::string path = dir_.WriteFile("plugin", "#!/bin/sh\n");
  ExecCredentialProvider provider(V1Config(path), RealProcessRunner(), clock_);
  EXPECT_THAT(Message(provider.Get().status()), HasSubstr("is not executable (chmod +x it)"));
}

TEST_F(PluginTest, AFailedRunGivesTheExitCodeAndTheEndOfStderrAndIsNotCached) {
  ExecConfig config = ConfigFor(Script("plugin", fmt::format(R"(echo run >> {0}/runs
for i in $(seq 1 500); do echo "noise line $i" >&2; done
echo "An error occurred (ExpiredToken): the SSO session has expired; run aws sso login" >&2
exit 255
)",
                                                             dir_.path())));
  ExecCredentialProvider provider(config, RealProcessRunner(), clock_);
  absl::Status status = provider.Get().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(status), HasSubstr("user eks-admin: credential plugin "));
  EXPECT_THAT(Message(status),
              HasSubstr("exited with code 255; its stderr: ..."));  // the tail only
  EXPECT_THAT(Message(status), HasSubstr("the SSO session has expired; run aws sso login"));
  EXPECT_THAT(Message(status), Not(HasSubstr("noise line 1\n")));
  EXPECT_FALSE(provider.Get().ok());
  EXPECT_EQ(Runs(), 2);  // failures are not cached: the next request tries again
}

TEST_F(PluginTest, AHungPluginIsKilledAtTheTimeout) {
  ExecConfig config = ConfigFor(Script("plugin", R"(echo "waiting for the browser login" >&2
sleep 30 &
wait
)"));
  ExecProviderOptions options;
  options.timeout = absl::Milliseconds(300);
  ExecCredentialProvider provider(config, RealProcessRunner(), clock_, options);
  const absl::Time start = absl::Now();
  absl::Status status = provider.Get().status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_THAT(Message(status), HasSubstr("did not finish within 300ms and was killed"));
  EXPECT_THAT(Message(status), HasSubstr("its stderr: waiting for the browser login"));
}

TEST_F(PluginTest, OutputThatIsNotACredentialIsAnErrorAfterARealRun) {
  ExecConfig config = ConfigFor(Script("plugin", "echo 'Please log in: https://example.org'\n"));
  ExecCredentialProvider provider(config, RealProcessRunner(), clock_);
  EXPECT_THAT(Message(provider.Get().status()),
              HasSubstr("its output is not an ExecCredential JSON object"));
}

// The seam: a runner that never starts a process sees exactly what would run.
class RecordingRunner final : public ProcessRunner {
 public:
  absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec) override {
    specs.push_back(spec);
    ProcessResult result;
    result.stdout_text =
        R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}})";
    return result;
  }
  std::vector<ProcessSpec> specs;
};

TEST_F(PluginTest, ExecEnvWinsOverTheOperatorsEnvironmentAndTheTimeoutIsPassedOn) {
  setenv("REGION", "us-east-1", 1);
  RecordingRunner runner;
  ExecConfig config = ConfigFor(TokenPlugin("plugin"));
  config.env = {{"REGION", "eu-west-1"}};
  ExecCredentialProvider provider(config, runner, clock_);
  ASSERT_TRUE(provider.Get().ok());
  unsetenv("REGION");
  ASSERT_EQ(runner.specs.size(), 1u);
  EXPECT_THAT(runner.specs[0].env, ::testing::Contains("REGION=eu-west-1"));
  EXPECT_THAT(runner.specs[0].env, Not(::testing::Contains("REGION=us-east-1")));
  EXPECT_EQ(runner.specs[0].timeout, absl::Seconds(60));
  EXPECT_EQ(runner.specs[0].argv[0], config.command);
}

}  // namespace
}  // namespace kmm::kube
