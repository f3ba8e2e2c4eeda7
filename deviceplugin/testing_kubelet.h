// Test helpers for the device plugin: a kubelet-side Registration server that, like the
// real kubelet, dials the plugin back during Register; and a ListAndWatch client that
// records every list it receives. Both over real unix sockets.
#ifndef KMM_DEVICEPLUGIN_TESTING_KUBELET_H_
#define KMM_DEVICEPLUGIN_TESTING_KUBELET_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "deviceplugin/v1beta1/api.grpc.pb.h"

namespace kmm::deviceplugin::testing {

class FakeKubelet final : public v1beta1::Registration::Service {
 public:
  explicit FakeKubelet(std::string dir) : dir_(std::move(dir)) {}
  ~FakeKubelet() override { Stop(); }

  bool Start() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + dir_ + "/kubelet.sock", grpc::InsecureServerCredentials());
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    return server_ != nullptr;
  }
  void Stop() {
    if (server_) server_->Shutdown();
    server_.reset();
  }

  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* request,
                        v1beta1::Empty*) override {
    // As the kubelet: the plugin must already serve its endpoint.
    auto channel = grpc::CreateChannel("unix://" + dir_ + "/" + request->endpoint(),
                                       grpc::InsecureChannelCredentials());
    auto stub = v1beta1::DevicePlugin::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1beta1::DevicePluginOptions options;
    grpc::Status dialed = stub->GetDevicePluginOptions(&context, v1beta1::Empty(), &options);
    if (!dialed.ok()) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "cannot dial plugin: " + dialed.error_message()};
    }
    absl::MutexLock lock(&mu_);
    requests_.push_back(*request);
    options_.push_back(options);
    return grpc::Status::OK;
  }

  bool WaitForRegistrations(size_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, count]()
                      ABSL_SHARED_LOCKS_REQUIRED(mu_) { return requests_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  std::vector<v1beta1::RegisterRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<v1beta1::DevicePluginOptions> dialed_options() {
    absl::MutexLock lock(&mu_);
    return options_;
  }

 private:
  std::string dir_;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  std::vector<v1beta1::RegisterRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<v1beta1::DevicePluginOptions> options_ ABSL_GUARDED_BY(mu_);
};

// Reads a ListAndWatch stream on a thread, as the kubelet does.
class ListAndWatchClient {
 public:
  explicit ListAndWatchClient(const std::string& socket) {
    stub_ = v1beta1::DevicePlugin::NewStub(
        grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials()));
    reader_thread_ = std::thread([this] {
      auto reader = stub_->ListAndWatch(&context_, v1beta1::Empty());
      v1beta1::ListAndWatchResponse response;
      while (reader->Read(&response)) {
        absl::MutexLock lock(&mu_);
        lists_.push_back(response);
      }
      const grpc::Status status = reader->Finish();
      absl::MutexLock lock(&mu_);
      ended_ = true;
    });
  }
  ~ListAndWatchClient() {
    context_.TryCancel();
    reader_thread_.join();
  }

  // Waits until the latest list satisfies `predicate`.
  bool WaitFor(const std::function<bool(const v1beta1::ListAndWatchResponse&)>& predicate,
               absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !lists_.empty() && predicate(lists_.back());
    };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }
  bool WaitForEnd(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout);
  }
  v1beta1::ListAndWatchResponse Latest() {
    absl::MutexLock lock(&mu_);
    return lists_.empty() ? v1beta1::ListAndWatchResponse() : lists_.back();
  }

 private:
  std::unique_ptr<v1beta1::DevicePlugin::Stub> stub_;
  grpc::ClientContext context_;
  std::thread reader_thread_;
  absl::Mutex mu_;
  std::vector<v1beta1::ListAndWatchResponse> lists_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

// "kmm-ci-a0:Healthy,kmm-ci-a1:Unhealthy"
inline std::string Describe(const v1beta1::ListAndWatchResponse& list) {
  std::string text;
  for (const auto& device : list.devices()) {
    if (!text.empty()) text += ",";
    text += device.id() + ":" + device.health();
  }
  return text;
}

}  // namespace kmm::deviceplugin::testing

#endif  // KMM_DEVICEPLUGIN_TESTING_KUBELET_H_
