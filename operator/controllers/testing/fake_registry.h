// A registry for the build tests: the OCI distribution API's manifest and blob reads on
// 127.0.0.1 (plain HTTP, no auth) over images the test puts, each with a digest and labels,
// as a build Job would have pushed them.
#ifndef KMM_OPERATOR_CONTROLLERS_TESTING_FAKE_REGISTRY_H_
#define KMM_OPERATOR_CONTROLLERS_TESTING_FAKE_REGISTRY_H_

#include <httplib.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace kmm::controllers::testing {

class FakeRegistry {
 public:
  FakeRegistry() {
    server_.Get(R"(/v2/(.+)/(manifests|blobs)/(.+))",
                [this](const httplib::Request& request, httplib::Response& response) {
                  Serve(request.matches[1], request.matches[2], request.matches[3], response);
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeRegistry() {
    server_.stop();
    thread_.join();
  }
  // "127.0.0.1:PORT"
  std::string host() const { return fmt::format("127.0.0.1:{}", port_); }

  // Puts repository:tag with these labels; returns its digest (new at every put).
  std::string Put(const std::string& repository, const std::string& tag,
                  std::map<std::string, std::string> labels = {}) {
    absl::MutexLock lock(&mu_);
    ++pushes_;
    const std::string digest = fmt::format("sha256:{:064x}", pushes_);
    const std::string config = fmt::format("sha256:{:064x}", 1000000 + pushes_);
    nlohmann::json manifest = {
        {"schemaVersion", 2},
        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
        {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config}}},
        {"layers", nlohmann::json::array()}};
    images_[repository + ":" + tag] = {digest, manifest.dump()};
    blobs_[config] = nlohmann::json{{"config", {{"Labels", labels}}}}.dump();
    return digest;
  }
  void Remove(const std::string& repository, const std::string& tag) {
    absl::MutexLock lock(&mu_);
    images_.erase(repository + ":" + tag);
  }
  int requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  void Serve(const std::string& repository, const std::string& kind, const std::string& reference,
             httplib::Response& response) {
    absl::MutexLock lock(&mu_);
    ++requests_;
    if (kind == "blobs") {
      auto blob = blobs_.find(reference);
      if (blob == blobs_.end()) {
        response.status = 404;
        return;
      }
      response.set_content(blob->second, "application/octet-stream");
      return;
    }
    auto image = images_.find(repository + ":" + reference);
    if (image == images_.end()) {
      response.status = 404;
      response.set_content(
          R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})",
          "application/json");
      return;
    }
    response.set_header("Docker-Content-Digest", image->second.first);
    response.set_content(image->second.second, "application/vnd.oci.image.manifest.v1+json");
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  absl::Mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> images_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);
  int pushes_ ABSL_GUARDED_BY(mu_) = 0;
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kmm::controllers::testing

#endif  // KMM_OPERATOR_CONTROLLERS_TESTING_FAKE_REGISTRY_H_
