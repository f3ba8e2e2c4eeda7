// The device plugin over emulated devices: real libudev reading a umockdev testbed, real
// uevents, real gRPC over unix sockets, and a kubelet-like registration server. Runs under
// umockdev-wrapper (see CMakeLists.txt).
#include <gtest/gtest.h>
#include <umockdev.h>

#include <filesystem>

#include "absl/time/clock.h"
#include "common/testing/temp_dir.h"
#include "deviceplugin/device_plugin.h"
#include "deviceplugin/device_source.h"
#include "deviceplugin/testing_kubelet.h"

namespace kmm::deviceplugin {
namespace {

using testing::Describe;
using testing::FakeKubelet;
using testing::ListAndWatchClient;

constexpr absl::Duration kWait = absl::Seconds(10);

class Testbed {
 public:
  Testbed() : testbed_(umockdev_testbed_new()) {}
  ~Testbed() { g_object_unref(testbed_); }

  std::string AddPciParent(const std::string& name, const std::string& numa_node) {
    gchar* path = umockdev_testbed_add_device(testbed_, "pci", name.c_str(), nullptr, "numa_node",
                                              numa_node.c_str(), nullptr, "PCI_SLOT_NAME",
                                              name.c_str(), nullptr);
    return Take(path);
  }
  std::string AddMisc(const std::string& name, const std::string& parent = "",
                      const std::string& health = "1") {
    gchar* path = umockdev_testbed_add_device(
        testbed_, "misc", name.c_str(), parent.empty() ? nullptr : parent.c_str(), "health",
        health.c_str(), "dev", "10:99", nullptr, "DEVNAME", ("/dev/" + name).c_str(), nullptr);
    return Take(path);
  }
  void Uevent(const std::string& syspath, const char* action) {
    umockdev_testbed_uevent(testbed_, syspath.c_str(), action);
  }
  void SetAttribute(const std::string& syspath, const char* name, const char* value) {
    umockdev_testbed_set_attribute(testbed_, syspath.c_str(), name, value);
  }
  void Remove(const std::string& syspath) {
    umockdev_testbed_uevent(testbed_, syspath.c_str(), "remove");
    umockdev_testbed_remove_device(testbed_, syspath.c_str());
  }

 private:
  static std::string Take(gchar* path) {
    std::string result = path == nullptr ? "" : path;
    g_free(path);
    return result;
  }
  UMockdevTestbed* testbed_;
};

ResourceConfig KmmCiA() {
  ResourceConfig resource;
  resource.resource_name = "example.com/kmm-ci-a";
  resource.match.subsystem = "misc";
  resource.match.kernel = "kmm-ci-a*";
  resource.health.attribute = "health";
  return resource;
}

TEST(UdevDeviceSource, ListsMatchingDevicesWithHealthAndNumaFromAParent) {
  Testbed testbed;
  const std::string parent = testbed.AddPciParent("0000:3b:00.0", "1");
  testbed.AddMisc("kmm-ci-a0", parent);
  testbed.AddMisc("kmm-ci-a1", "", "0");
  testbed.AddMisc("other0");
  auto source = MakeUdevDeviceSource("udev");
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<std::vector<Device>> devices = (*source)->List(KmmCiA());
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 2u);
  EXPECT_EQ((*devices)[0].id, "kmm-ci-a0");
  EXPECT_EQ((*devices)[0].devnode, "/dev/kmm-ci-a0");
  EXPECT_TRUE((*devices)[0].healthy);
  EXPECT_EQ((*devices)[0].numa_node, 1);
  EXPECT_EQ((*devices)[1].id, "kmm-ci-a1");
  EXPECT_FALSE((*devices)[1].healthy);
  EXPECT_EQ((*devices)[1].numa_node, -1);

  ResourceConfig by_devnode = KmmCiA();
  by_devnode.match.kernel.clear();
  by_devnode.match.devnode = "/dev/other*";
  EXPECT_EQ((*source)->List(by_devnode)->size(), 1u);
}

class DevicePluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(kubelet_.Start());
    a0_ = testbed_.AddMisc("kmm-ci-a0");
    a1_ = testbed_.AddMisc("kmm-ci-a1");
  }

  std::unique_ptr<DevicePlugin> StartPlugin(ResourceConfig resource = KmmCiA()) {
    DevicePluginConfig config;
    config.resources.push_back(std::move(resource));
    config.uevent_source = "udev";
    auto source = MakeUdevDeviceSource("udev");
    EXPECT_TRUE(source.ok()) << source.status();
    DevicePluginOptions options;
    options.device_plugin_dir = dir_.path();
    auto plugin = DevicePlugin::Create(config, options, std::move(*source));
    EXPECT_TRUE(plugin.ok()) << plugin.status();
    EXPECT_TRUE((*plugin)->Start().ok());
    return std::move(*plugin);
  }

  std::string PluginSocket() const { return dir_.Join(SocketNameFor("example.com/kmm-ci-a")); }

  kmm::testing::TempDir dir_;
  Testbed testbed_;
  FakeKubelet kubelet_{dir_.path()};
  std::string a0_, a1_;
};

TEST_F(DevicePluginTest, ServesThenRegistersWithTheKubeletsContract) {
  auto plugin = StartPlugin();
  ASSERT_TRUE(kubelet_.WaitForRegistrations(1, kWait));
  const v1beta1::RegisterRequest request = kubelet_.requests()[0];
  EXPECT_EQ(request.version(), "v1beta1");
  EXPECT_EQ(request.resource_name(), "example.com/kmm-ci-a");
  EXPECT_EQ(request.endpoint(), "kmm-example.com_kmm-ci-a.sock");
  EXPECT_TRUE(request.options().get_preferred_allocation_available());
  // The options the kubelet fetched by dialing back agree with the registered ones.
  EXPECT_TRUE(kubelet_.dialed_options()[0].get_preferred_allocation_available());
  EXPECT_FALSE(kubelet_.dialed_options()[0].pre_start_required());
}

TEST_F(DevicePluginTest, ListAndWatchFollowsHotplugAndHealthEvents) {
  auto plugin = StartPlugin();
  ListAndWatchClient client(PluginSocket());
  ASSERT_TRUE(client.WaitFor(
      [](const auto& l) { return Describe(l) == "kmm-ci-a0:Healthy,kmm-ci-a1:Healthy"; }, kWait))
      << Describe(client.Latest());

  const std::string a2 = testbed_.AddMisc("kmm-ci-a2");
  testbed_.Uevent(a2, "add");
  ASSERT_TRUE(client.WaitFor([](const auto& l) { return l.devices_size() == 3; }, kWait))
      << Describe(client.Latest());

  testbed_.SetAttribute(a0_, "health", "0");
  testbed_.Uevent(a0_, "change");
  ASSERT_TRUE(client.WaitFor(
      [](const auto& l) { return Describe(l).find("kmm-ci-a0:Unhealthy") != std::string::npos; },
      kWait))
      << Describe(client.Latest());

  testbed_.SetAttribute(a0_, "health", "1");
  testbed_.Uevent(a0_, "change");
  ASSERT_TRUE(client.WaitFor(
      [](const auto& l) { return Describe(l).find("kmm-ci-a0:Healthy") != std::string::npos; },
      kWait))
      << "an unhealthy device recovers: " << Describe(client.Latest());

  testbed_.Remove(a1_);
  ASSERT_TRUE(client.WaitFor(
      [](const auto& l) { return Describe(l) == "kmm-ci-a0:Healthy,kmm-ci-a2:Healthy"; }, kWait))
      << Describe(client.Latest());
}

TEST_F(DevicePluginTest, AllocateRoundTripOverTheSocket) {
  ResourceConfig resource = KmmCiA();
  resource.cdi.enabled = true;
  resource.cdi.spec_dir = dir_.Join("cdi");
  auto plugin = StartPlugin(resource);
  ASSERT_TRUE(kubelet_.WaitForRegistrations(1, kWait));
  auto stub = v1beta1::DevicePlugin::NewStub(
      grpc::CreateChannel("unix://" + PluginSocket(), grpc::InsecureChannelCredentials()));
  v1beta1::AllocateRequest request;
  request.add_container_requests()->add_devices_ids("kmm-ci-a1");
  v1beta1::AllocateResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Allocate(&context, request, &response).ok());
  ASSERT_EQ(response.container_responses_size(), 1);
  EXPECT_EQ(response.container_responses(0).devices(0).host_path(), "/dev/kmm-ci-a1");
  EXPECT_EQ(response.container_responses(0).cdi_devices(0).name(),
            "example.com/kmm-ci-a=kmm-ci-a1");
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("cdi/kmm-example.com_kmm-ci-a.json")));

  v1beta1::AllocateRequest bad;
  bad.add_container_requests()->add_devices_ids("kmm-ci-a7");
  grpc::ClientContext bad_context;
  const grpc::Status refused = stub->Allocate(&bad_context, bad, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("kmm-ci-a7"), std::string::npos);

  v1beta1::PreferredAllocationRequest preferred;
  auto* container = preferred.add_container_requests();
  container->add_available_deviceids("kmm-ci-a0");
  container->add_available_deviceids("kmm-ci-a1");
  container->add_must_include_deviceids("kmm-ci-a1");
  container->set_allocation_size(1);
  v1beta1::PreferredAllocationResponse chosen;
  grpc::ClientContext preferred_context;
  ASSERT_TRUE(stub->GetPreferredAllocation(&preferred_context, preferred, &chosen).ok());
  ASSERT_EQ(chosen.container_responses(0).deviceids_size(), 1);
  EXPECT_EQ(chosen.container_responses(0).deviceids(0), "kmm-ci-a1");
}

TEST_F(DevicePluginTest, RegistersAgainAfterAKubeletRestart) {
  auto plugin = StartPlugin();
  ASSERT_TRUE(kubelet_.WaitForRegistrations(1, kWait));
  // A restarting kubelet removes every socket in the directory, then listens again.
  kubelet_.Stop();
  std::filesystem::remove(dir_.Join("kubelet.sock"));
  std::filesystem::remove(PluginSocket());
  FakeKubelet restarted(dir_.path());
  ASSERT_TRUE(restarted.Start());
  ASSERT_TRUE(restarted.WaitForRegistrations(1, kWait)) << "no re-registration";
  EXPECT_TRUE(std::filesystem::exists(PluginSocket())) << "the plugin serves again";
  ListAndWatchClient client(PluginSocket());
  EXPECT_TRUE(client.WaitFor([](const auto& l) { return l.devices_size() == 2; }, kWait));
  // The kubelet sees the Register call before the plugin has its reply and counts it.
  const absl::Time deadline = absl::Now() + kWait;
  while (plugin->registrations() < 2 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(plugin->registrations(), 2);
}

TEST_F(DevicePluginTest, RegistersOnceTheKubeletAppears) {
  kubelet_.Stop();
  std::filesystem::remove(dir_.Join("kubelet.sock"));
  auto plugin = StartPlugin();
  FakeKubelet late(dir_.path());
  ASSERT_TRUE(late.Start());
  EXPECT_TRUE(late.WaitForRegistrations(1, kWait));
}

TEST_F(DevicePluginTest, StopEndsStreamsAndRemovesTheSocket) {
  auto plugin = StartPlugin();
  ListAndWatchClient client(PluginSocket());
  ASSERT_TRUE(client.WaitFor([](const auto& l) { return l.devices_size() == 2; }, kWait));
  plugin->Stop();
  EXPECT_TRUE(client.WaitForEnd(kWait));
  EXPECT_FALSE(std::filesystem::exists(PluginSocket()));
}

}  // namespace
}  // namespace kmm::deviceplugin
