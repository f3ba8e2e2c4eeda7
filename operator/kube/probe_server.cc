#include "operator/kube/probe_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>

#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace kmm::kube {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Probes and scrapes are few and quick; two threads keep the operator's footprint small.
constexpr size_t kServerThreads = 2;
// An idle keep-alive connection holds a server thread, and Stop() waits for it.
constexpr time_t kKeepAliveSeconds = 1;

absl::Status BadAddress(std::string_view address, std::string_view why) {
  return absl::InvalidArgumentError(fmt::format(
      "listen address \"{}\": {}; expected host:port, :port or [ipv6]:port (e.g. \":8081\")",
      address, why));
}

// The body lists every check the way Kubernetes' own /readyz does:
//   [+]informers ok
//   [-]leader failed: not the leader
//   readyz check failed
void ServeChecks(std::string_view endpoint,
                 const std::vector<std::pair<std::string, ProbeCheck>>& checks,
                 const httplib::Request& request, httplib::Response& response) {
  std::string listing;
  bool failed = false;
  for (const auto& [name, check] : checks) {
    const absl::Status status = check();
    if (status.ok()) {
      listing += fmt::format("[+]{} ok\n", name);
    } else {
      failed = true;
      listing += fmt::format("[-]{} failed: {}\n", name, status.message());
    }
  }
  if (failed) {
    // Expected while the operator starts, so not a warning.
    spdlog::info("{} check failed: {}", endpoint, listing);
    response.status = 500;
    response.set_content(fmt::format("{}{} check failed\n", listing, endpoint), "text/plain");
  } else if (request.has_param("verbose")) {
    response.set_content(fmt::format("{}{} check passed\n", listing, endpoint), "text/plain");
  } else {
    response.set_content("ok\n", "text/plain");
  }
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return BadAddress(address, "no port");
  std::string_view host = address.substr(0, colon);
  const std::string_view port_text = address.substr(colon + 1);

  if (host.starts_with('[')) {
    if (!host.ends_with(']') || host.size() < 3) return BadAddress(address, "unclosed \"[\"");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return BadAddress(address, "an IPv6 host must be in brackets");
  }

  int port = -1;
  const char* end = port_text.data() + port_text.size();
  const auto [parsed_end, error] = std::from_chars(port_text.data(), end, port);
  if (port_text.empty() || error != std::errc() || parsed_end != end || port < 0 || port > 65535) {
    return BadAddress(address,
                      fmt::format("port \"{}\" is not a number from 0 to 65535", port_text));
  }
  return ListenAddress{host.empty() ? "0.0.0.0" : std::string(host), port};
}

ProbeServer::ProbeServer(std::string address, const Registry* metrics)
    : address_(std::move(address)), metrics_(metrics) {}

ProbeServer::~ProbeServer() { Stop(); }

void ProbeServer::AddHealthCheck(std::string name, ProbeCheck check) {
  absl::MutexLock lock(&mu_);
  health_checks_.emplace_back(std::move(name), std::move(check));
}

void ProbeServer::AddReadinessCheck(std::string name, ProbeCheck check) {
  absl::MutexLock lock(&mu_);
  readiness_checks_.emplace_back(std::move(name), std::move(check));
}

ProbeServer::Checks ProbeServer::HealthChecks() const {
  absl::MutexLock lock(&mu_);
  return health_checks_;
}

ProbeServer::Checks ProbeServer::ReadinessChecks() const {
  absl::MutexLock lock(&mu_);
  return readiness_checks_;
}

absl::Status ProbeServer::Start() {
  if (server_ != nullptr) return absl::FailedPreconditionError("probe server: already started");
  ASSIGN_OR_RETURN(const ListenAddress listen, ParseListenAddress(address_));

  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  server_->set_keep_alive_timeout(kKeepAliveSeconds);
  // httplib's default is SO_REUSEPORT, which lets a second process bind the same port and
  // silently take half the probes; SO_REUSEADDR only allows a quick restart.
  server_->set_socket_options([](socket_t sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Checks run outside mu_, so a slow one does not hold up AddReadinessCheck.
  server_->Get("/healthz", [this](const httplib::Request& request, httplib::Response& response) {
    ServeChecks("healthz", HealthChecks(), request, response);
  });
  server_->Get("/readyz", [this](const httplib::Request& request, httplib::Response& response) {
    ServeChecks("readyz", ReadinessChecks(), request, response);
  });
  if (metrics_ != nullptr) {
    server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
      response.set_content(metrics_->Render(), kMetricsContentType);
    });
  }

  // httplib reports only failure; errno still holds the cause (e.g. EADDRINUSE from bind).
  errno = 0;
  int port = listen.port;
  if (port == 0) {
    port = server_->bind_to_any_port(listen.host);
  } else if (!server_->bind_to_port(listen.host, port)) {
    port = -1;
  }
  if (port < 0) {
    const int bind_errno = errno;
    const std::string message = fmt::format("probe server: cannot listen on {}", address_);
    server_.reset();
    return bind_errno != 0 ? ErrnoError(bind_errno, message) : absl::UnavailableError(message);
  }
  port_ = port;
  listener_ = std::thread([this] {
    if (!server_->listen_after_bind()) spdlog::error("probe server on {} failed", address_);
    listener_done_.Notify();
  });
  spdlog::info("probe server listening on {} (port {})", address_, port_);
  return absl::OkStatus();
}

void ProbeServer::Stop() {
  if (!listener_.joinable()) return;
  // httplib's stop() does nothing until its listen loop has begun, which may be just after
  // Start() returned, and must not be called twice; so wait for the loop to be running (or
  // to have ended on its own), then stop it once.
  while (!listener_done_.WaitForNotificationWithTimeout(absl::Milliseconds(1))) {
    if (server_->is_running()) {
      server_->stop();
      break;
    }
  }
  listener_done_.WaitForNotification();
  listener_.join();
}

}  // namespace kmm::kube
