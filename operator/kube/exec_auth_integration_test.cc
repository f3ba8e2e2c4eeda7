// Kubeconfigs with exec credential plugins against the real kube-apiserver of the local test
// cluster: plugin scripts that get ServiceAccount tokens with `kubectl create token` (or hand
// out the admin client certificate) and count their runs. A refused first token is replaced
// once (for requests, concurrent requests and a watch), a credential is cached while valid
// and replaced when it expires. Needs KMM_TEST_CLUSTER_DIR (set by ctest's cluster fixture).
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/escaping.h"
#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/kube/curl_kube_client.h"
#include "operator/kube/rest_config.h"

namespace kmm::kube {
namespace {

using nlohmann::json;

std::string ClusterDir() {
  const char* dir = std::getenv("KMM_TEST_CLUSTER_DIR");
  return dir != nullptr ? dir : "/tmp/kmm-test-cluster";
}

const Resource kServiceAccounts{"", "v1", "serviceaccounts", true, "ServiceAccount"};
const Resource kRoles{"rbac.authorization.k8s.io", "v1", "roles", true, "Role"};
const Resource kRoleBindings{"rbac.authorization.k8s.io", "v1", "rolebindings", true,
                             "RoleBinding"};
const Resource kSelfSubjectReviews{"authentication.k8s.io", "v1", "selfsubjectreviews", false,
                                   "SelfSubjectReview"};

// Who the API server takes the client for.
absl::StatusOr<std::string> WhoAmI(KubeClient& client) {
  ASSIGN_OR_RETURN(json review, client.Create(kSelfSubjectReviews, "",
                                              {{"apiVersion", "authentication.k8s.io/v1"},
                                               {"kind", "SelfSubjectReview"}}));
  return review["status"]["userInfo"]["username"].get<std::string>();
}

class ExecAuthIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<RestConfig> admin = LoadKubeconfig(ClusterDir() + "/admin.kubeconfig");
    ASSERT_TRUE(admin.ok()) << admin.status() << " (is the test cluster up?)";
    admin_config_ = *admin;
    auto client = CurlKubeClient::Create(*admin, {});
    ASSERT_TRUE(client.ok()) << client.status();
    admin_ = std::move(*client);
    std::mt19937 random(std::random_device{}());
    ns_ = fmt::format("kmm-exec-{:08x}", random());
    ASSERT_TRUE(
        admin_
            ->Create(resources::kNamespaces, "",
                     {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}})
            .ok());
    // The identity the token plugin logs in as: it may use ConfigMaps in the namespace.
    ASSERT_TRUE(admin_
                    ->Create(kServiceAccounts, ns_,
                             {{"apiVersion", "v1"},
                              {"kind", "ServiceAccount"},
                              {"metadata", {{"name", "reader"}}}})
                    .ok());
    ASSERT_TRUE(admin_
                    ->Create(kRoles, ns_,
                             {{"apiVersion", "rbac.authorization.k8s.io/v1"},
                              {"kind", "Role"},
                              {"metadata", {{"name", "configmaps"}}},
                              {"rules",
                               {{{"apiGroups", {""}},
                                 {"resources", {"configmaps"}},
                                 {"verbs", {"get", "list", "watch", "create"}}}}}})
                    .ok());
    ASSERT_TRUE(
        admin_
            ->Create(kRoleBindings, ns_,
                     {{"apiVersion", "rbac.authorization.k8s.io/v1"},
                      {"kind", "RoleBinding"},
                      {"metadata", {{"name", "reader"}}},
                      {"roleRef",
                       {{"apiGroup", "rbac.authorization.k8s.io"},
                        {"kind", "Role"},
                        {"name", "configmaps"}}},
                      {"subjects",
                       {{{"kind", "ServiceAccount"}, {"name", "reader"}, {"namespace", ns_}}}}})
            .ok());
  }
  void TearDown() override {
    if (admin_ != nullptr) admin_->Delete(resources::kNamespaces, "", ns_, {}).IgnoreError();
  }

  // Writes an exec kubeconfig for the test cluster whose plugin is ./plugin (relative: found
  // beside the kubeconfig) and loads it as kmm-operator would.
  absl::StatusOr<RestConfig> ExecKubeconfig(const std::string& plugin_body) {
    const std::string plugin = dir_.WriteFile("plugin", "#!/bin/sh\nset -e\n" + plugin_body);
    std::filesystem::permissions(plugin, std::filesystem::perms::owner_all);
    std::string ca;
    absl::Base64Escape(ToAbsl(admin_config_.ca_pem), &ca);
    std::ifstream bin_file(ClusterDir() + "/bin");
    std::string kubernetes_bin;
    std::getline(bin_file, kubernetes_bin);
    const std::string path = dir_.WriteFile(
        "kubeconfig", fmt::format(R"(apiVersion: v1
kind: Config
current-context: exec
contexts:
- name: exec
  context: {{cluster: test, user: plugin, namespace: {ns}}}
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: plugin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./plugin
      args: [{ns}]
      env: [{{name: PATH, value: "{bin}:/usr/bin:/bin"}}, {{name: RUNS, value: "{runs}"}}]
      provideClusterInfo: true
      interactiveMode: Never
      installHint: the test writes ./plugin
)",
                                  fmt::arg("ns", ns_), fmt::arg("server", admin_config_.server),
                                  fmt::arg("ca", ca), fmt::arg("bin", kubernetes_bin),
                                  fmt::arg("runs", dir_.Join("runs"))));
    return LoadKubeconfig(path);
  }

  // A plugin that answers `invalid_runs` times with a token the API server refuses, then
  // with a token of ServiceAccount `reader` (expiring after `lifetime_seconds` when > 0).
  std::string TokenPlugin(int invalid_runs, int lifetime_seconds = 0) {
    return fmt::format(R"(echo run >> "$RUNS"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$RUNS.exec-info"
n=$(wc -l < "$RUNS")
if [ "$n" -le {invalid_runs} ]; then
  token=not-a-valid-token
else
  token=$(kubectl --kubeconfig {admin} create token reader -n "$1" --duration 10m)
fi
expiry=""
if [ {lifetime} -gt 0 ]; then
  expiry=",\"expirationTimestamp\":\"$(date -u -d "+{lifetime} seconds" +%Y-%m-%dT%H:%M:%SZ)\""
fi
printf '{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"%s"%s}}}}\n' "$token" "$expiry"
)",
                       fmt::arg("invalid_runs", invalid_runs),
                       fmt::arg("admin", ClusterDir() + "/admin.kubeconfig"),
                       fmt::arg("lifetime", lifetime_seconds));
  }

  int Runs() {
    std::string text = testing::ReadFile(dir_.Join("runs"));
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  }

  std::unique_ptr<CurlKubeClient> ClientFor(const RestConfig& config) {
    auto client = CurlKubeClient::Create(config, {});
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  RestConfig admin_config_;
  std::unique_ptr<CurlKubeClient> admin_;
  std::string ns_;
  testing::TempDir dir_;
};

TEST_F(ExecAuthIntegrationTest, ARefusedTokenIsReplacedOnceAndTheNewOneCached) {
  absl::StatusOr<RestConfig> config = ExecKubeconfig(TokenPlugin(/*invalid_runs=*/1));
  ASSERT_TRUE(config.ok()) << config.status();
  std::unique_ptr<CurlKubeClient> client = ClientFor(*config);
  ASSERT_NE(client, nullptr);
  // The first token is refused (401); the plugin runs again and the request is retried.
  absl::StatusOr<std::string> user = WhoAmI(*client);
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(*user, fmt::format("system:serviceaccount:{}:reader", ns_));
  EXPECT_EQ(Runs(), 2);
  // No expiry: the token is kept for every later request.
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<ObjectList> list = client->List(resources::kConfigMaps, ns_, {});
    ASSERT_TRUE(list.ok()) << list.status();
  }
  ASSERT_TRUE(client
                  ->Create(resources::kConfigMaps, ns_,
                           {{"apiVersion", "v1"},
                            {"kind", "ConfigMap"},
                            {"metadata", {{"name", "made-with-exec"}}}})
                  .ok());
  EXPECT_EQ(Runs(), 2);
  // provideClusterInfo: the plugin was told which cluster it logs in to.
  json exec_info = json::parse(testing::ReadFile(dir_.Join("runs.exec-info")));
  EXPECT_EQ(exec_info["kind"], "ExecCredential");
  EXPECT_EQ(exec_info["spec"]["interactive"], false);
  EXPECT_EQ(exec_info["spec"]["cluster"]["server"], admin_config_.server);
  // The token's own permissions apply: nodes are not among them.
  absl::StatusOr<ObjectList> nodes = client->List(resources::kNodes, "", {});
  EXPECT_EQ(nodes.status().code(), absl::StatusCode::kPermissionDenied) << nodes.status();
}

TEST_F(ExecAuthIntegrationTest, ConcurrentRequestsRefusedTogetherShareOneRerun) {
  absl::StatusOr<RestConfig> config = ExecKubeconfig(TokenPlugin(/*invalid_runs=*/1));
  ASSERT_TRUE(config.ok()) << config.status();
  std::unique_ptr<CurlKubeClient> client = ClientFor(*config);
  ASSERT_NE(client, nullptr);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      absl::StatusOr<ObjectList> list = client->List(resources::kConfigMaps, ns_, {});
      if (list.ok()) ++ok;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(Runs(), 2);  // one refused token, one replacement for all eight
}

TEST_F(ExecAuthIntegrationTest, AnExpiringTokenIsReplacedShortlyBeforeItExpires) {
  // Valid for 12 s by its expirationTimestamp (whole seconds: 11 to 12 s); replaced 5 s
  // before.
  absl::StatusOr<RestConfig> config =
      ExecKubeconfig(TokenPlugin(/*invalid_runs=*/0, /*lifetime_seconds=*/12));
  ASSERT_TRUE(config.ok()) << config.status();
  std::unique_ptr<CurlKubeClient> client = ClientFor(*config);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->List(resources::kConfigMaps, ns_, {}).ok());
  // The plugin has run; its token is kept for 6 to 7 s more.
  const absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->List(resources::kConfigMaps, ns_, {}).ok());
  ASSERT_LT(absl::Now() - start, absl::Seconds(3)) << "too slow to see the cached token";
  EXPECT_EQ(Runs(), 1);
  absl::SleepFor(absl::Seconds(7.5) - (absl::Now() - start));
  ASSERT_TRUE(client->List(resources::kConfigMaps, ns_, {}).ok());
  EXPECT_EQ(Runs(), 2);
}

TEST_F(ExecAuthIntegrationTest, AWatchRefusedAtTheStartRunsThePluginAgain) {
  absl::StatusOr<RestConfig> config = ExecKubeconfig(TokenPlugin(/*invalid_runs=*/1));
  ASSERT_TRUE(config.ok()) << config.status();
  std::unique_ptr<CurlKubeClient> client = ClientFor(*config);
  ASSERT_NE(client, nullptr);
  Cancellation cancel;
  std::atomic<bool> seen{false};
  absl::Status ended;
  std::thread watcher([&] {
    ended = client->Watch(
        resources::kConfigMaps, ns_, {},
        [&](WatchEvent&& event) {
          if (event.type == WatchEvent::Type::kAdded &&
              event.object["metadata"]["name"] == "watched") {
            seen = true;
            return false;
          }
          return true;
        },
        cancel);
  });
  // A watch without a resourceVersion starts with ADDED for what exists, so it sees the
  // ConfigMap whether it is created before or after the watch is established.
  ASSERT_TRUE(
      admin_
          ->Create(
              resources::kConfigMaps, ns_,
              {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "watched"}}}})
          .ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!seen && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  cancel.Cancel();
  watcher.join();
  EXPECT_TRUE(seen);
  EXPECT_TRUE(ended.ok()) << ended;
  EXPECT_EQ(Runs(), 2);
}

TEST_F(ExecAuthIntegrationTest, AClientCertificateFromThePlugin) {
  const std::string pki = ClusterDir() + "/pki";
  absl::StatusOr<RestConfig> config = ExecKubeconfig(fmt::format(
      R"(echo run >> "$RUNS"
python3 -c 'import json, sys
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"clientCertificateData": open(sys.argv[1]).read(),
                             "clientKeyData": open(sys.argv[2]).read()}}}}))' {0}/admin.crt {0}/admin.key
)",
      pki));
  ASSERT_TRUE(config.ok()) << config.status();
  std::unique_ptr<CurlKubeClient> client = ClientFor(*config);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::string> user = WhoAmI(*client);
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(*user, "kmm-admin");
  EXPECT_TRUE(client->List(resources::kNodes, "", {}).ok());  // system:masters may
  EXPECT_EQ(Runs(), 1);
}

}  // namespace
}  // namespace kmm::kube
