// The kubelet routes calls by HTTP/2 path ("/v1beta1.DevicePlugin/Allocate"). These tests
// call every generated client stub against a generic server that records the path it
// receives, so what is checked is what actually goes over the socket.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "deviceplugin/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"
#include "podresources/v1/api.grpc.pb.h"

namespace {

// Answers every call with UNIMPLEMENTED after noting its method path.
class PathRecorder final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      paths_.push_back(ctx->method());
    }
    class Reject final : public grpc::ServerGenericBidiReactor {
     public:
      Reject() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "recorded")); }
      void OnDone() override { delete this; }
    };
    return new Reject;
  }

  std::vector<std::string> TakePaths() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(paths_, {});
  }

 private:
  std::mutex mu_;
  std::vector<std::string> paths_;
};

class MethodPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::temp_directory_path() / "kmm-paths-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    const std::string address = "unix://" + dir_ + "/recorder.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterCallbackGenericService(&recorder_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  // Runs `call` with a fresh context and returns the one path the server saw.
  template <typename Call>
  std::string PathOf(Call call) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status status = call(&context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
    std::vector<std::string> paths = recorder_.TakePaths();
    return paths.size() == 1 ? paths[0] : "<" + std::to_string(paths.size()) + " calls>";
  }

  std::string dir_;
  PathRecorder recorder_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(MethodPathTest, DevicePluginApiPathsAreTheKubelets) {
  auto registration = v1beta1::Registration::NewStub(channel_);
  auto plugin = v1beta1::DevicePlugin::NewStub(channel_);
  v1beta1::Empty empty;
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              return registration->Register(c, v1beta1::RegisterRequest(), &empty);
            }),
            "/v1beta1.Registration/Register");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              v1beta1::DevicePluginOptions options;
              return plugin->GetDevicePluginOptions(c, empty, &options);
            }),
            "/v1beta1.DevicePlugin/GetDevicePluginOptions");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              auto reader = plugin->ListAndWatch(c, empty);
              v1beta1::ListAndWatchResponse response;
              while (reader->Read(&response)) {
              }
              return reader->Finish();
            }),
            "/v1beta1.DevicePlugin/ListAndWatch");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              v1beta1::PreferredAllocationResponse response;
              return plugin->GetPreferredAllocation(c, v1beta1::PreferredAllocationRequest(),
                                                    &response);
            }),
            "/v1beta1.DevicePlugin/GetPreferredAllocation");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              v1beta1::AllocateResponse response;
              return plugin->Allocate(c, v1beta1::AllocateRequest(), &response);
            }),
            "/v1beta1.DevicePlugin/Allocate");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              v1beta1::PreStartContainerResponse response;
              return plugin->PreStartContainer(c, v1beta1::PreStartContainerRequest(), &response);
            }),
            "/v1beta1.DevicePlugin/PreStartContainer");
}

TEST_F(MethodPathTest, PluginRegistrationApiPathsAreTheKubelets) {
  auto stub = pluginregistration::Registration::NewStub(channel_);
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              pluginregistration::PluginInfo info;
              return stub->GetInfo(c, pluginregistration::InfoRequest(), &info);
            }),
            "/pluginregistration.Registration/GetInfo");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              pluginregistration::RegistrationStatusResponse response;
              return stub->NotifyRegistrationStatus(c, pluginregistration::RegistrationStatus(),
                                                    &response);
            }),
            "/pluginregistration.Registration/NotifyRegistrationStatus");
}

TEST_F(MethodPathTest, PodResourcesApiPathsAreTheKubelets) {
  auto stub = v1::PodResourcesLister::NewStub(channel_);
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              v1::ListPodResourcesResponse response;
              return stub->List(c, v1::ListPodResourcesRequest(), &response);
            }),
            "/v1.PodResourcesLister/List");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              v1::AllocatableResourcesResponse response;
              return stub->GetAllocatableResources(c, v1::AllocatableResourcesRequest(), &response);
            }),
            "/v1.PodResourcesLister/GetAllocatableResources");
  EXPECT_EQ(PathOf([&](grpc::ClientContext* c) {
              v1::GetPodResourcesResponse response;
              return stub->Get(c, v1::GetPodResourcesRequest(), &response);
            }),
            "/v1.PodResourcesLister/Get");
}

// The full-runtime services have exactly the kubelet's methods.
TEST(ServiceDescriptors, HaveExactlyTheKubeletsMethods) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  // (deviceplugin/v1beta1 uses the lite runtime: its paths are checked on the wire above.)
  EXPECT_EQ(pool->FindServiceByName("pluginregistration.Registration")->method_count(), 2);
  EXPECT_EQ(pool->FindServiceByName("v1.PodResourcesLister")->method_count(), 3);
}

}  // namespace
