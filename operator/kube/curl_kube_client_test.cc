// The HTTP layer of CurlKubeClient against a small local HTTP server that records requests
// and answers as scripted: what goes on the wire (paths, queries, content types, the bearer
// token and its rotation) and how responses come back (Retry-After, error bodies). Real API
// semantics are tested against kube-apiserver in kube_integration_test.cc.
#include "operator/kube/curl_kube_client.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <thread>

#include "common/testing/temp_dir.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "operator/kube/api_error.h"

namespace kmm::kube {
namespace {

using ::testing::HasSubstr;

struct Recorded {
  std::string method, path, query, content_type, authorization, body;
};
struct Scripted {
  Scripted() = default;
  Scripted(int status_code, std::string response_body, std::string retry_after_seconds = "")
      : status(status_code),
        body(std::move(response_body)),
        retry_after(std::move(retry_after_seconds)) {}
  int status = 200;
  std::string body = "{}";
  std::string retry_after;
};

class ScriptedServer {
 public:
  ScriptedServer() {
    auto handle = [this](const httplib::Request& request, httplib::Response& response) {
      absl::MutexLock lock(&mu_);
      std::string query;
      for (const auto& [key, value] : request.params) {
        query += (query.empty() ? "" : "&") + key + "=" + value;
      }
      recorded_.push_back({request.method, request.path, query,
                           request.get_header_value("Content-Type"),
                           request.get_header_value("Authorization"), request.body});
      Scripted next = script_.empty() ? Scripted{} : script_.front();
      if (!script_.empty()) script_.pop_front();
      response.status = next.status;
      if (!next.retry_after.empty()) response.set_header("Retry-After", next.retry_after);
      response.set_content(next.body, "application/json");
    };
    server_.Get(".*", handle);
    server_.Post(".*", handle);
    server_.Put(".*", handle);
    server_.Patch(".*", handle);
    server_.Delete(".*", handle);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~ScriptedServer() {
    server_.stop();
    thread_.join();
  }
  void Then(Scripted response) {
    absl::MutexLock lock(&mu_);
    script_.push_back(std::move(response));
  }
  std::vector<Recorded> recorded() {
    absl::MutexLock lock(&mu_);
    return recorded_;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  absl::Mutex mu_;
  std::deque<Scripted> script_ ABSL_GUARDED_BY(mu_);
  std::vector<Recorded> recorded_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<CurlKubeClient> ClientFor(const ScriptedServer& server, Clock& clock,
                                          RestConfig config = {}) {
  config.server = server.url();
  auto client = CurlKubeClient::Create(config, {}, clock);
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(*client);
}

const nlohmann::json kObject = {{"metadata", {{"name", "n1"}}}};

TEST(CurlKubeClientTest, AddressesCoreGroupAndNamespacedPaths) {
  ScriptedServer server;
  FakeClock clock;
  auto client = ClientFor(server, clock);
  ASSERT_TRUE(client->Get(resources::kNodes, "ignored", "n1").ok());
  ASSERT_TRUE(client->Get(resources::kDaemonSets, "kmm", "d1").ok());
  ASSERT_TRUE(client->Update(resources::kModules, "kmm", kObject, "status").ok());
  std::vector<Recorded> recorded = server.recorded();
  EXPECT_EQ(recorded[0].path, "/api/v1/nodes/n1");
  EXPECT_EQ(recorded[1].path, "/apis/apps/v1/namespaces/kmm/daemonsets/d1");
  EXPECT_EQ(recorded[2].path, "/apis/kmm.sigs.x-k8s.io/v1beta1/namespaces/kmm/modules/n1/status");
  EXPECT_EQ(recorded[2].method, "PUT");
}

TEST(CurlKubeClientTest, SendsListQueriesEscaped) {
  ScriptedServer server;
  FakeClock clock;
  auto client = ClientFor(server, clock);
  server.Then(
      {200,
       R"({"metadata":{"resourceVersion":"7","continue":"next"},"items":[{"metadata":{"name":"a"}}]})"});
  ListOptions options;
  options.label_selector = "app in (a,b)";
  options.field_selector = "spec.nodeName=n 1";
  options.limit = 10;
  options.continue_token = "tok==";
  absl::StatusOr<ObjectList> list = client->List(resources::kPods, "", options);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->resource_version, "7");
  EXPECT_EQ(list->continue_token, "next");
  EXPECT_EQ(list->items[0]["kind"], "Pod");  // filled in, as a get would have it
  EXPECT_EQ(list->items[0]["apiVersion"], "v1");
  Recorded request = server.recorded()[0];
  EXPECT_EQ(request.path, "/api/v1/pods");
  // httplib decodes the query: what we sent arrived intact.
  EXPECT_THAT(request.query, HasSubstr("labelSelector=app in (a,b)"));
  EXPECT_THAT(request.query, HasSubstr("fieldSelector=spec.nodeName=n 1"));
  EXPECT_THAT(request.query, HasSubstr("continue=tok=="));
  EXPECT_THAT(request.query, HasSubstr("limit=10"));
}

TEST(CurlKubeClientTest, UsesEachPatchContentType) {
  ScriptedServer server;
  FakeClock clock;
  auto client = ClientFor(server, clock);
  ASSERT_TRUE(client->MergePatch(resources::kNodes, "", "n1", {{"a", 1}}, "").ok());
  ASSERT_TRUE(client->Apply(resources::kNodes, "", kObject, {"kmm-operator", true}, "").ok());
  DeleteOptions options;
  options.propagation_policy = "Foreground";
  options.precondition_resource_version = "5";
  ASSERT_TRUE(client->Delete(resources::kNodes, "", "n1", options).ok());
  std::vector<Recorded> recorded = server.recorded();
  EXPECT_EQ(recorded[0].content_type, "application/merge-patch+json");
  EXPECT_EQ(recorded[1].content_type, "application/apply-patch+yaml");
  EXPECT_THAT(recorded[1].query, HasSubstr("fieldManager=kmm-operator"));
  EXPECT_THAT(recorded[1].query, HasSubstr("force=true"));
  nlohmann::json delete_body = nlohmann::json::parse(recorded[2].body);
  EXPECT_EQ(delete_body["propagationPolicy"], "Foreground");
  EXPECT_EQ(delete_body["preconditions"]["resourceVersion"], "5");
}

TEST(CurlKubeClientTest, HonoursRetryAfterOnTooManyRequests) {
  ScriptedServer server;
  FakeClock clock;
  auto client = ClientFor(server, clock);
  server.Then({429, R"({"kind":"Status","reason":"TooManyRequests","message":"slow"})", "3"});
  server.Then({429, R"({"kind":"Status","reason":"TooManyRequests","message":"slow"})", "1"});
  server.Then({200, R"({"metadata":{"name":"n1"}})"});
  const absl::Time start = clock.Now();
  absl::StatusOr<nlohmann::json> node = client->Get(resources::kNodes, "", "n1");
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(clock.Now() - start, absl::Seconds(4));  // waited exactly what the server asked
  EXPECT_EQ(server.recorded().size(), 3u);
}

TEST(CurlKubeClientTest, GivesUpAfterTheRetryBudgetWithTheServersError) {
  ScriptedServer server;
  FakeClock clock;
  auto client = ClientFor(server, clock);
  for (int i = 0; i < 10; ++i) {
    server.Then(
        {429, R"({"kind":"Status","reason":"TooManyRequests","message":"slow down"})", "1"});
  }
  absl::StatusOr<nlohmann::json> node = client->Get(resources::kNodes, "", "n1");
  EXPECT_TRUE(IsApiTooManyRequests(node.status()));
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("slow down"));
  EXPECT_EQ(server.recorded().size(), 6u);  // the first try and five retries
}

TEST(CurlKubeClientTest, ReReadsARotatedTokenFileEveryMinute) {
  ScriptedServer server;
  FakeClock clock;
  testing::TempDir dir;
  RestConfig config;
  config.token_file = dir.WriteFile("token", "first\n");
  auto client = ClientFor(server, clock, config);
  ASSERT_TRUE(client->Get(resources::kNodes, "", "n1").ok());
  dir.WriteFile("token", "second");
  clock.Advance(absl::Seconds(30));
  ASSERT_TRUE(client->Get(resources::kNodes, "", "n1").ok());
  clock.Advance(absl::Seconds(31));
  ASSERT_TRUE(client->Get(resources::kNodes, "", "n1").ok());
  std::vector<Recorded> recorded = server.recorded();
  EXPECT_EQ(recorded[0].authorization, "Bearer first");
  EXPECT_EQ(recorded[1].authorization, "Bearer first");
  EXPECT_EQ(recorded[2].authorization, "Bearer second");
}

TEST(CurlKubeClientTest, AnUnreadableTokenFileIsAConfigurationError) {
  RestConfig config;
  config.server = "https://127.0.0.1:1";
  config.token_file = "/nonexistent/token";
  auto client = CurlKubeClient::Create(config, {});
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(std::string(client.status().message()), HasSubstr("/nonexistent/token"));
}

TEST(CurlKubeClientTest, AConnectionFailureIsUnavailableAndNamesTheUrl) {
  RestConfig config;
  config.server = "http://127.0.0.1:1";
  auto client = CurlKubeClient::Create(config, {});
  ASSERT_TRUE(client.ok());
  absl::StatusOr<nlohmann::json> node = (*client)->Get(resources::kNodes, "", "n1");
  EXPECT_EQ(node.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(node.status().message()),
              HasSubstr("http://127.0.0.1:1/api/v1/nodes/n1"));
}

TEST(CurlKubeClientTest, WatchStreamsEventsAndReportsAnErrorResponse) {
  ScriptedServer server;
  FakeClock clock;
  auto client = ClientFor(server, clock);
  server.Then({200, R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})"
                    "\n"
                    R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"6"}}})"
                    "\n"});
  server.Then(
      {410, R"({"kind":"Status","reason":"Expired","message":"too old resource version"})"});
  Cancellation cancel;
  std::vector<std::string> seen;
  WatchOptions options;
  options.resource_version = "4";
  absl::Status ended = client->Watch(
      resources::kNodes, "", options,
      [&](WatchEvent&& event) {
        seen.push_back(std::string(WatchEventTypeName(event.type)));
        return true;
      },
      cancel);
  EXPECT_TRUE(ended.ok()) << ended;
  EXPECT_THAT(seen, ::testing::ElementsAre("ADDED", "DELETED"));
  EXPECT_THAT(server.recorded()[0].query, HasSubstr("resourceVersion=4"));
  EXPECT_THAT(server.recorded()[0].query, HasSubstr("allowWatchBookmarks=true"));
  EXPECT_THAT(server.recorded()[0].query, HasSubstr("watch=1"));
  absl::Status gone = client->Watch(
      resources::kNodes, "", {}, [](WatchEvent&&) { return true; }, cancel);
  EXPECT_TRUE(IsApiGone(gone)) << gone;
}

TEST(CurlKubeClientTest, CountsRequestsByVerbAndCode) {
  ScriptedServer server;
  Registry registry;
  ClientMetrics metrics(registry);
  RequestMetrics observer(metrics);
  ClientOptions options;
  options.observer = &observer;
  RestConfig config;
  config.server = server.url();
  auto client = CurlKubeClient::Create(config, options);
  ASSERT_TRUE(client.ok());
  server.Then({404, R"({"kind":"Status","reason":"NotFound","message":"gone"})"});
  (*client)->Get(resources::kNodes, "", "n1").IgnoreError();
  ASSERT_TRUE((*client)->Get(resources::kNodes, "", "n1").ok());
  ASSERT_TRUE((*client)->Create(resources::kNodes, "", kObject).ok());
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("kmm_api_requests_total{verb=\"get\",code=\"404\"} 1"));
  EXPECT_THAT(text, HasSubstr("kmm_api_requests_total{verb=\"get\",code=\"200\"} 1"));
  EXPECT_THAT(text, HasSubstr("kmm_api_requests_total{verb=\"create\",code=\"200\"} 1"));
}

// An exec plugin (a real script) printing "token-<run>", expiring at `expiry` if given; the
// runs are counted in `dir`.
std::shared_ptr<ExecCredentialProvider> TokenPlugin(const testing::TempDir& dir, Clock& clock,
                                                    std::string expiry = "") {
  if (!expiry.empty()) expiry = fmt::format(R"(,\"expirationTimestamp\":\"{}\")", expiry);
  const std::string script = dir.WriteFile("plugin", fmt::format(R"(#!/bin/sh
echo run >> {0}/runs
n=$(wc -l < {0}/runs)
echo "{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"token-$n\"{1}}}}}"
)",
                                                                 dir.path(), expiry));
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  ExecConfig config;
  config.api_version = std::string(kExecApiV1beta1);
  config.command = script;
  config.origin = "kubeconfig test, user u";
  return std::make_shared<ExecCredentialProvider>(config, RealProcessRunner(), clock);
}

int Runs(const testing::TempDir& dir) {
  std::string text = testing::ReadFile(dir.Join("runs"));
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

const Scripted kUnauthorized{
    401, R"({"kind":"Status","reason":"Unauthorized","message":"Unauthorized"})"};

// A client whose credential comes from TokenPlugin, against a scripted server.
class CurlKubeClientExecTest : public ::testing::Test {
 protected:
  std::unique_ptr<CurlKubeClient> PluginClient(std::string expiry = "") {
    RestConfig config;
    config.exec_credentials = TokenPlugin(dir_, clock_, std::move(expiry));
    return ClientFor(server_, clock_, config);
  }

  ScriptedServer server_;
  FakeClock clock_;
  testing::TempDir dir_;
};

TEST_F(CurlKubeClientExecTest, UsesTheCachedPluginCredentialForEveryRequest) {
  auto client = PluginClient();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Get(resources::kNodes, "", "n1").ok());
  for (const Recorded& request : server_.recorded()) {
    EXPECT_EQ(request.authorization, "Bearer token-1");
  }
  EXPECT_EQ(Runs(dir_), 1);
}

TEST_F(CurlKubeClientExecTest, RunsThePluginAgainOnceOn401AndRetries) {
  auto client = PluginClient();
  server_.Then(kUnauthorized);
  absl::StatusOr<nlohmann::json> node = client->Get(resources::kNodes, "", "n1");
  ASSERT_TRUE(node.ok()) << node.status();
  std::vector<Recorded> recorded = server_.recorded();
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[0].authorization, "Bearer token-1");
  EXPECT_EQ(recorded[1].authorization, "Bearer token-2");
  EXPECT_EQ(Runs(dir_), 2);
  // The new credential is kept for the next requests.
  ASSERT_TRUE(client->Create(resources::kConfigMaps, "ns", kObject).ok());
  EXPECT_EQ(server_.recorded()[2].authorization, "Bearer token-2");
  EXPECT_EQ(Runs(dir_), 2);
}

TEST_F(CurlKubeClientExecTest, TheCredentialGotAfterA401IsUsedEvenIfAboutToExpire) {
  // Already within the provider's refresh margin when it is printed.
  auto client =
      PluginClient(absl::FormatTime(absl::RFC3339_sec, clock_.Now(), absl::UTCTimeZone()));
  server_.Then(kUnauthorized);
  ASSERT_TRUE(client->Get(resources::kNodes, "", "n1").ok());
  EXPECT_EQ(server_.recorded()[1].authorization, "Bearer token-2");
  EXPECT_EQ(Runs(dir_), 2);  // not a third run for the retry
}

TEST_F(CurlKubeClientExecTest, ASecond401IsReturnedNamingThePluginNotRetriedInALoop) {
  auto client = PluginClient();
  for (int i = 0; i < 5; ++i) server_.Then(kUnauthorized);
  absl::StatusOr<nlohmann::json> node = client->Get(resources::kNodes, "", "n1");
  EXPECT_EQ(node.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(node.status().message()),
              HasSubstr("kubeconfig test, user u: credential plugin "));
  EXPECT_THAT(std::string(node.status().message()),
              HasSubstr("the API server refused the credential it gave, also after running it "
                        "again: API server: Unauthorized (HTTP 401"));
  EXPECT_EQ(server_.recorded().size(), 2u);
  EXPECT_EQ(Runs(dir_), 2);
}

TEST_F(CurlKubeClientExecTest, A401WithoutAPluginIsReturnedAtOnce) {
  RestConfig config;
  config.token = "fixed";
  auto client = ClientFor(server_, clock_, config);
  server_.Then(kUnauthorized);
  EXPECT_EQ(client->Get(resources::kNodes, "", "n1").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(server_.recorded().size(), 1u);
}

TEST_F(CurlKubeClientExecTest, AWatchRefusedAtTheStartRefreshesAndWatches) {
  auto client = PluginClient();
  server_.Then(kUnauthorized);
  server_.Then({200, R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})"
                     "\n"});
  Cancellation cancel;
  std::vector<std::string> seen;
  absl::Status ended = client->Watch(
      resources::kNodes, "", {},
      [&](WatchEvent&& event) {
        seen.push_back(event.object["metadata"]["name"]);
        return true;
      },
      cancel);
  EXPECT_TRUE(ended.ok()) << ended;
  EXPECT_THAT(seen, ::testing::ElementsAre("a"));
  std::vector<Recorded> recorded = server_.recorded();
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[1].authorization, "Bearer token-2");
}

TEST_F(CurlKubeClientExecTest, APluginFailingAfterA401SaysBoth) {
  auto client = PluginClient();
  ASSERT_TRUE(client->Get(resources::kNodes, "", "n1").ok());
  // The plugin breaks (its login expired), then the server refuses the cached token.
  dir_.WriteFile("plugin", "#!/bin/sh\necho 'the SSO session has expired' >&2\nexit 1\n");
  server_.Then(kUnauthorized);
  absl::Status status = client->Get(resources::kNodes, "", "n1").status();
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("the API server refused the credential (401 Unauthorized) and getting a "
                        "new one failed: kubeconfig test, user u: credential plugin "));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("exited with code 1; its stderr: the SSO session has expired"));
}

TEST_F(CurlKubeClientExecTest, AMissingPluginIsAConfigurationError) {
  ExecConfig exec;
  exec.api_version = std::string(kExecApiV1);
  exec.command = "kmm-no-such-plugin";
  exec.origin = "kubeconfig test, user u";
  exec.install_hint = "install kmm-no-such-plugin";
  RestConfig config;
  config.server = "https://127.0.0.1:1";
  config.exec_credentials = std::make_shared<ExecCredentialProvider>(exec);
  auto client = CurlKubeClient::Create(config, {});
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(std::string(client.status().message()), HasSubstr("install kmm-no-such-plugin"));
}

}  // namespace
}  // namespace kmm::kube
