#include "operator/kube/probe_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <string>

namespace kmm::kube {
namespace {

using ::testing::HasSubstr;

// A client for a server on this machine that gives up quickly instead of hanging a test.
httplib::Client ClientFor(const ProbeServer& server) {
  httplib::Client client("127.0.0.1", server.port());
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  return client;
}

TEST(ProbeServer, HealthzIsOkWhenEveryCheckPasses) {
  ProbeServer server("127.0.0.1:0", nullptr);
  server.AddHealthCheck("ping", [] { return absl::OkStatus(); });
  ASSERT_TRUE(server.Start().ok());
  EXPECT_GT(server.port(), 0);

  httplib::Client client = ClientFor(server);
  httplib::Result response = client.Get("/healthz");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ok\n");

  response = client.Get("/healthz?verbose");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "[+]ping ok\nhealthz check passed\n");
}

TEST(ProbeServer, HealthzFailsListingTheFailingCheck) {
  ProbeServer server("127.0.0.1:0", nullptr);
  server.AddHealthCheck("leader-election",
                        [] { return absl::DeadlineExceededError("lease not renewed for 40s"); });
  ASSERT_TRUE(server.Start().ok());

  httplib::Result response = ClientFor(server).Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->body,
            "[-]leader-election failed: lease not renewed for 40s\nhealthz check failed\n");
}

TEST(ProbeServer, ReadyzFailsNamingTheFailingCheckUntilItPasses) {
  std::atomic<bool> synced{false};
  ProbeServer server("127.0.0.1:0", nullptr);
  server.AddReadinessCheck("ping", [] { return absl::OkStatus(); });
  server.AddReadinessCheck("informers", [&synced] {
    return synced ? absl::OkStatus() : absl::UnavailableError("caches not synced");
  });
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client = ClientFor(server);

  httplib::Result response = client.Get("/readyz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->body,
            "[+]ping ok\n[-]informers failed: caches not synced\nreadyz check failed\n");

  synced = true;
  response = client.Get("/readyz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ok\n");
}

TEST(ProbeServer, ChecksAddedWhileServingTakeEffect) {
  ProbeServer server("127.0.0.1:0", nullptr);
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client = ClientFor(server);
  ASSERT_EQ(client.Get("/readyz")->status, 200);
  server.AddReadinessCheck("late", [] { return absl::UnavailableError("not yet"); });
  httplib::Result response = client.Get("/readyz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_THAT(response->body, HasSubstr("[-]late failed: not yet"));
}

TEST(ProbeServer, MetricsServesTheRegistryInPrometheusTextFormat) {
  Registry registry;
  registry.AddCounter("kmm_test_total", "A test counter.", {"kind"}).WithLabels({"a"}).Inc(2);
  ProbeServer server("127.0.0.1:0", &registry);
  ASSERT_TRUE(server.Start().ok());

  httplib::Result response = ClientFor(server).Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response->body,
            "# HELP kmm_test_total A test counter.\n"
            "# TYPE kmm_test_total counter\n"
            "kmm_test_total{kind=\"a\"} 2\n");
}

TEST(ProbeServer, WithoutARegistryMetricsIsNotFound) {
  ProbeServer server("127.0.0.1:0", nullptr);
  ASSERT_TRUE(server.Start().ok());
  httplib::Result response = ClientFor(server).Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404);
}

TEST(ProbeServer, PortInUseIsAnErrorNamingTheAddress) {
  ProbeServer first("127.0.0.1:0", nullptr);
  ASSERT_TRUE(first.Start().ok());
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());

  ProbeServer second(taken, nullptr);
  const absl::Status status = second.Start();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot listen on " + taken));
  EXPECT_THAT(std::string(status.message()), HasSubstr("in use")) << status;
  second.Stop();  // harmless after a failed Start
}

TEST(ProbeServer, MalformedAddressIsAnInvalidArgumentNamingIt) {
  ProbeServer server("localhost", nullptr);
  const absl::Status status = server.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("\"localhost\""));
}

TEST(ProbeServer, SecondStartIsAnError) {
  ProbeServer server("127.0.0.1:0", nullptr);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ProbeServer, StopEndsServing) {
  ProbeServer server("127.0.0.1:0", nullptr);
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client = ClientFor(server);
  ASSERT_TRUE(client.Get("/healthz"));
  server.Stop();
  EXPECT_FALSE(client.Get("/healthz"));
  server.Stop();  // idempotent
}

TEST(ProbeServer, StopRightAfterStartReturns) {
  for (int i = 0; i < 20; ++i) {
    ProbeServer server("127.0.0.1:0", nullptr);
    ASSERT_TRUE(server.Start().ok());
    server.Stop();
  }
}

TEST(ParseListenAddress, AcceptsTheUsualForms) {
  absl::StatusOr<ListenAddress> any = ParseListenAddress(":8081");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->host, "0.0.0.0");
  EXPECT_EQ(any->port, 8081);

  absl::StatusOr<ListenAddress> loopback = ParseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(loopback.ok()) << loopback.status();
  EXPECT_EQ(loopback->host, "127.0.0.1");
  EXPECT_EQ(loopback->port, 0);

  absl::StatusOr<ListenAddress> ipv6 = ParseListenAddress("[::1]:9443");
  ASSERT_TRUE(ipv6.ok()) << ipv6.status();
  EXPECT_EQ(ipv6->host, "::1");
  EXPECT_EQ(ipv6->port, 9443);
}

TEST(ParseListenAddress, RejectsMalformedAddresses) {
  for (const char* address :
       {"8081", "", ":", ":http", ":65536", ":-1", "host:80x", "::1:80", "[::1:80", "[]:80"}) {
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(address);
    ASSERT_FALSE(parsed.ok()) << address;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_THAT(std::string(parsed.status().message()),
                HasSubstr("\"" + std::string(address) + "\""));
  }
}

}  // namespace
}  // namespace kmm::kube
