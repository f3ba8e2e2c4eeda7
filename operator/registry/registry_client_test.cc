// RegistryClient against recorded registry answers (testdata/*.json): a loopback server
// replays each recording's responses in order and fails the test on any request that is not
// the one recorded next, so the tests pin both what the client asks and what it makes of
// the answers: anonymous, Basic and token flows, refusals and a registry without HEAD.
#include "operator/registry/registry_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

namespace kmm::registry {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Serves a recording's responses in order on 127.0.0.1.
class ReplayRegistry {
 public:
  explicit ReplayRegistry(json exchanges) : exchanges_(std::move(exchanges)) {
    server_.Get(".*", [this](const httplib::Request& request, httplib::Response& response) {
      Serve(request, response);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ReplayRegistry() {
    server_.stop();
    thread_.join();
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  void set_exchanges(json exchanges) {
    absl::MutexLock lock(&mu_);
    exchanges_ = std::move(exchanges);
  }
  size_t served() {
    absl::MutexLock lock(&mu_);
    return next_;
  }
  std::vector<std::string> mismatches() {
    absl::MutexLock lock(&mu_);
    return mismatches_;
  }

 private:
  void Serve(const httplib::Request& request, httplib::Response& response) {
    absl::MutexLock lock(&mu_);
    std::string query;
    size_t question = request.target.find('?');
    if (question != std::string::npos) query = request.target.substr(question + 1);
    json got = {{"method", request.method},
                {"path", request.path},
                {"authorization", request.has_header("Authorization")
                                      ? json(request.get_header_value("Authorization"))
                                      : json(nullptr)}};
    if (!query.empty()) got["query"] = query;
    if (next_ >= exchanges_.size()) {
      mismatches_.push_back("unexpected request " + got.dump());
      response.status = 599;
      return;
    }
    const json& exchange = exchanges_[next_++];
    if (got != exchange["request"]) {
      mismatches_.push_back("expected " + exchange["request"].dump() + ", got " + got.dump());
      response.status = 599;
      return;
    }
    if (request.method == "HEAD" || request.method == "GET") {
      EXPECT_THAT(request.get_header_value("Accept"),
                  HasSubstr("application/vnd.oci.image.manifest.v1+json"));
    }
    const json& answer = exchange["response"];
    response.status = answer["status"].get<int>();
    json headers = json::object();
    if (answer.contains("headers")) headers = answer["headers"];
    for (auto header = headers.begin(); header != headers.end(); ++header) {
      if (header.key() != "Content-Type") {
        response.set_header(header.key(), header.value().get<std::string>());
      }
    }
    std::string content_type = headers.value("Content-Type", "application/json");
    response.set_content(answer.value("body", ""), content_type);
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  absl::Mutex mu_;
  json exchanges_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> mismatches_ ABSL_GUARDED_BY(mu_);
};

Transport PlainHttp() {
  Transport transport;
  transport.insecure = true;
  return transport;
}

class RecordedAnswersTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordedAnswersTest, ClientAsksAndConcludesAsRecorded) {
  ReplayRegistry registry(json::array());
  std::string escaped_host = absl::StrReplaceAll(registry.host(), {{":", "%3A"}});
  std::string text = absl::StrReplaceAll(
      ReadFile(std::filesystem::path(KMM_REGISTRY_TESTDATA) / GetParam()),
      {{"{{registry}}", registry.host()}, {"{{registry_escaped}}", escaped_host}});
  json recording = json::parse(text);
  registry.set_exchanges(recording["exchanges"]);

  absl::StatusOr<ImageReference> image = ParseImageReference(recording["image"].get<std::string>());
  ASSERT_TRUE(image.ok()) << image.status();
  std::optional<Credentials> credentials;
  if (recording.contains("dockerconfigjson")) {
    absl::StatusOr<DockerConfig> config =
        DockerConfig::Parse(recording["dockerconfigjson"].dump(), "Secret test/pull");
    ASSERT_TRUE(config.ok()) << config.status();
    credentials = config->Find(image->domain, image->repository);
    ASSERT_TRUE(credentials.has_value()) << "the recording's Secret has no entry for the image";
  }
  FakeClock clock;
  RegistryClient client({}, clock);
  const json& expect = recording["expect"];
  const int checks = recording.value("checks", 1);
  for (int i = 0; i < checks; ++i) {
    absl::StatusOr<ImageStatus> status =
        client.Check(*image, credentials, PlainHttp(), recording.value("with_labels", false));
    if (expect.contains("error")) {
      ASSERT_FALSE(status.ok()) << "exists=" << status->exists;
      EXPECT_EQ(absl::StatusCodeToString(status.status().code()),
                expect["error"].get<std::string>());
      EXPECT_THAT(std::string(status.status().message()),
                  HasSubstr(expect["message"].get<std::string>()));
      EXPECT_THAT(std::string(status.status().message()), HasSubstr(image->ToString()))
          << "errors name the image";
    } else {
      ASSERT_TRUE(status.ok()) << status.status();
      EXPECT_EQ(status->exists, expect["exists"].get<bool>());
      EXPECT_EQ(status->digest, expect.value("digest", ""));
      EXPECT_EQ(json(status->labels), expect.value("labels", json::object()));
    }
    clock.Advance(absl::Seconds(30));  // within every recorded token's life
  }
  EXPECT_THAT(registry.mismatches(), ::testing::IsEmpty());
  EXPECT_EQ(registry.served(), recording["exchanges"].size()) << "recorded requests not made";
  EXPECT_EQ(client.requests(), static_cast<int>(recording["exchanges"].size()));
}

std::vector<std::string> Recordings() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(KMM_REGISTRY_TESTDATA)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string RecordingTestName(const ::testing::TestParamInfo<std::string>& recording) {
  std::string name = recording.param.substr(0, recording.param.size() - 5);  // no ".json"
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Recordings, RecordedAnswersTest, ::testing::ValuesIn(Recordings()),
                         RecordingTestName);

TEST(RegistryClientTest, AnExpiredTokenIsFetchedAgain) {
  ReplayRegistry registry(json::array());
  const std::string host = registry.host();
  json challenge = {
      {"status", 401},
      {"headers",
       {{"Www-Authenticate", "Bearer realm=\"http://" + host + "/token\",service=\"s\""}}}};
  json head = {{"method", "HEAD"}, {"path", "/v2/a/b/manifests/1"}, {"authorization", nullptr}};
  json token_request = {{"method", "GET"},
                        {"path", "/token"},
                        {"query", "service=s&scope=repository%3Aa%2Fb%3Apull"},
                        {"authorization", nullptr}};
  auto token_answer = [](const std::string& token) {
    return json{{"status", 200}, {"body", json{{"token", token}, {"expires_in", 60}}.dump()}};
  };
  json with = head;
  with["authorization"] = "Bearer t1";
  json with2 = head;
  with2["authorization"] = "Bearer t2";
  json ok = {{"status", 200}};
  registry.set_exchanges(json::array({
      {{"request", head}, {"response", challenge}},
      {{"request", token_request}, {"response", token_answer("t1")}},
      {{"request", with}, {"response", ok}},
      // 60 s later the token is too old to send: anonymous again, and a new one.
      {{"request", head}, {"response", challenge}},
      {{"request", token_request}, {"response", token_answer("t2")}},
      {{"request", with2}, {"response", ok}},
  }));
  FakeClock clock;
  RegistryClient client({}, clock);
  ImageReference image = *ParseImageReference(host + "/a/b:1");
  ASSERT_TRUE(client.Check(image, std::nullopt, PlainHttp()).ok());
  clock.Advance(absl::Seconds(55));
  ASSERT_TRUE(client.Check(image, std::nullopt, PlainHttp()).ok());
  EXPECT_THAT(registry.mismatches(), ::testing::IsEmpty());
  EXPECT_EQ(registry.served(), 6u);
}

TEST(RegistryClientTest, ATokenIsNotReusedForTheSameUserWithAnotherPassword) {
  // Two Secrets (say in two namespaces) name the same user, one with a wrong password: the
  // token the right password got must not answer for the wrong one.
  ReplayRegistry registry(json::array());
  const std::string host = registry.host();
  json challenge = {
      {"status", 401},
      {"headers",
       {{"Www-Authenticate", "Bearer realm=\"http://" + host + "/token\",service=\"s\""}}}};
  json head = {{"method", "HEAD"}, {"path", "/v2/a/b/manifests/1"}, {"authorization", nullptr}};
  auto token_request = [](const std::string& user_password) {
    return json{{"method", "GET"},
                {"path", "/token"},
                {"query", "service=s&scope=repository%3Aa%2Fb%3Apull"},
                {"authorization", "Basic " + absl::Base64Escape(user_password)}};
  };
  json with = head;
  with["authorization"] = "Bearer t1";
  registry.set_exchanges(json::array({
      {{"request", head}, {"response", challenge}},
      {{"request", token_request("u:right")},
       {"response",
        {{"status", 200}, {"body", json{{"token", "t1"}, {"expires_in", 300}}.dump()}}}},
      {{"request", with}, {"response", {{"status", 200}}}},
      // The other Secret: anonymous again, and its own password to the token service.
      {{"request", head}, {"response", challenge}},
      {{"request", token_request("u:wrong")}, {"response", {{"status", 401}}}},
  }));
  FakeClock clock;
  RegistryClient client({}, clock);
  ImageReference image = *ParseImageReference(host + "/a/b:1");
  ASSERT_TRUE(client.Check(image, Credentials{"u", "right", ""}, PlainHttp()).ok());
  absl::StatusOr<ImageStatus> other =
      client.Check(image, Credentials{"u", "wrong", ""}, PlainHttp());
  ASSERT_FALSE(other.ok()) << "answered with the other Secret's token: exists=" << other->exists;
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied) << other.status();
  EXPECT_THAT(registry.mismatches(), ::testing::IsEmpty());
  EXPECT_EQ(registry.served(), 5u);
}

TEST(RegistryClientTest, AnUnreachableRegistryIsUnavailableAndSaysWhatToCheck) {
  // A port nothing listens on: bind one, then close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  int port = ntohs(address.sin_port);
  close(fd);
  RegistryClient client;
  ImageReference image = *ParseImageReference("127.0.0.1:" + std::to_string(port) + "/a/b:1");
  absl::StatusOr<ImageStatus> status = client.Check(image, std::nullopt, Transport{});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.status().message()), HasSubstr("cannot reach the registry"));
  EXPECT_THAT(std::string(status.status().message()), HasSubstr("registryTLS.insecure"));
}

TEST(RegistryClientTest, ParsesChallenges) {
  std::optional<Challenge> bearer = ParseChallenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->scheme, "bearer");
  EXPECT_EQ(bearer->params["realm"], "https://auth.example/token");
  EXPECT_EQ(bearer->params["service"], "registry.example");
  EXPECT_EQ(bearer->params["scope"], "repository:a/b:pull,push");  // a ',' inside quotes

  std::optional<Challenge> basic = ParseChallenge(R"(Basic realm="a \"quoted\" realm")");
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->scheme, "basic");
  EXPECT_EQ(basic->params["realm"], "a \"quoted\" realm");

  std::optional<Challenge> token68 = ParseChallenge("bearer realm=https://a/t, service=x");
  ASSERT_TRUE(token68);
  EXPECT_EQ(token68->params["realm"], "https://a/t");
  EXPECT_EQ(token68->params["service"], "x");

  EXPECT_FALSE(ParseChallenge(""));
  EXPECT_FALSE(ParseChallenge(R"(Bearer realm="unterminated)"));
}

}  // namespace
}  // namespace kmm::registry
