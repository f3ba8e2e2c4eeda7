// A kubelet-style Registration server and a device-plugin-style client talking over a unix
// socket in a temporary directory, in one process: proves the generated stubs and the gRPC
// library work together the way the device plugin will use them.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "deviceplugin/v1beta1/api.grpc.pb.h"

namespace {

// Records every registration it receives, like the kubelet's device manager would.
class RecordingRegistration final : public v1beta1::Registration::Service {
 public:
  grpc::Status Register(grpc::ServerContext* /*context*/, const v1beta1::RegisterRequest* request,
                        v1beta1::Empty* /*response*/) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (request->version() != "v1beta1") {
      return {grpc::StatusCode::INVALID_ARGUMENT, "unsupported version " + request->version()};
    }
    requests_.push_back(*request);
    return grpc::Status::OK;
  }

  std::vector<v1beta1::RegisterRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::vector<v1beta1::RegisterRequest> requests_;
};

class TempDir {
 public:
  TempDir() {
    std::string pattern = std::filesystem::temp_directory_path() / "kmm-proto-XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(RegistrationOverUnixSocket, ClientRegistersWithServer) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string socket = dir.path() + "/kubelet.sock";
  ASSERT_LT(socket.size(), 100u);

  RecordingRegistration service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(std::filesystem::exists(socket));

  auto channel = grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials());
  auto stub = v1beta1::Registration::NewStub(channel);

  v1beta1::RegisterRequest request;
  request.set_version("v1beta1");
  request.set_endpoint("kmm-ci-a.sock");
  request.set_resource_name("example.com/kmm-ci-a");
  request.mutable_options()->set_get_preferred_allocation_available(true);
  v1beta1::Empty reply;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status status = stub->Register(&context, request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();

  const auto received = service.requests();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].endpoint(), "kmm-ci-a.sock");
  EXPECT_EQ(received[0].resource_name(), "example.com/kmm-ci-a");
  EXPECT_TRUE(received[0].options().get_preferred_allocation_available());

  // The server's own validation reaches the client as a gRPC status.
  request.set_version("v1alpha");
  grpc::ClientContext second;
  const grpc::Status rejected = stub->Register(&second, request, &reply);
  EXPECT_EQ(rejected.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(rejected.error_message(), "unsupported version v1alpha");

  server->Shutdown();
}

}  // namespace
