// Checks that the generated kubelet API code has the kubelet's wire identity: messages
// survive a serialize/parse round trip and the gRPC method paths are exactly the kubelet's.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

#include "deviceplugin/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"
#include "podresources/v1/api.grpc.pb.h"

namespace {

using google::protobuf::util::MessageDifferencer;

template <typename Message>
Message RoundTrip(const Message& original) {
  std::string wire;
  EXPECT_TRUE(original.SerializeToString(&wire));
  Message parsed;
  EXPECT_TRUE(parsed.ParseFromString(wire));
  return parsed;
}

v1beta1::AllocateResponse FullAllocateResponse() {
  v1beta1::AllocateResponse response;
  auto* container = response.add_container_responses();
  (*container->mutable_envs())["KMM_CI_A_DEVICES"] = "kmm-ci-a0,kmm-ci-a1";
  (*container->mutable_annotations())["kmm.sigs.x-k8s.io/devices"] = "2";
  auto* mount = container->add_mounts();
  mount->set_container_path("/etc/kmm-ci-a");
  mount->set_host_path("/var/lib/kmm/kmm-ci-a");
  mount->set_read_only(true);
  for (const char* name : {"kmm-ci-a0", "kmm-ci-a1"}) {
    auto* device = container->add_devices();
    device->set_container_path(std::string("/dev/") + name);
    device->set_host_path(std::string("/dev/") + name);
    device->set_permissions("rw");
  }
  container->add_cdi_devices()->set_name("example.com/kmm-ci-a=kmm-ci-a0");
  container->add_cdi_devices()->set_name("example.com/kmm-ci-a=kmm-ci-a1");
  response.add_container_responses()->add_cdi_devices()->set_name("example.com/kmm-ci-a=x");
  return response;
}

// Deterministic bytes (map entries sorted), to compare lite messages.
std::string Bytes(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

TEST(DevicePluginProto, AllocateResponseSurvivesRoundTrip) {
  const v1beta1::AllocateResponse original = FullAllocateResponse();
  const v1beta1::AllocateResponse parsed = RoundTrip(original);
  EXPECT_EQ(Bytes(original), Bytes(parsed));
  ASSERT_EQ(parsed.container_responses_size(), 2);
  const auto& first = parsed.container_responses(0);
  EXPECT_EQ(first.envs().at("KMM_CI_A_DEVICES"), "kmm-ci-a0,kmm-ci-a1");
  EXPECT_EQ(first.annotations().at("kmm.sigs.x-k8s.io/devices"), "2");
  EXPECT_EQ(first.mounts(0).container_path(), "/etc/kmm-ci-a");
  EXPECT_EQ(first.mounts(0).host_path(), "/var/lib/kmm/kmm-ci-a");
  EXPECT_TRUE(first.mounts(0).read_only());
  EXPECT_EQ(first.devices(1).container_path(), "/dev/kmm-ci-a1");
  EXPECT_EQ(first.devices(1).host_path(), "/dev/kmm-ci-a1");
  EXPECT_EQ(first.devices(1).permissions(), "rw");
  EXPECT_EQ(first.cdi_devices(1).name(), "example.com/kmm-ci-a=kmm-ci-a1");
  EXPECT_EQ(parsed.container_responses(1).cdi_devices(0).name(), "example.com/kmm-ci-a=x");
}

// The wire tag of the only field set: (field number << 3) | wire type.
template <typename Message>
int FirstTag(const Message& message) {
  const std::string bytes = Bytes(message);
  return bytes.empty() ? -1 : static_cast<unsigned char>(bytes[0]);
}

// Field numbers are the wire contract with the kubelet: pin the ones we rely on, on the
// wire itself (the device plugin API is compiled for the lite runtime, without descriptors).
TEST(DevicePluginProto, FieldNumbersMatchTheKubelet) {
  constexpr int kBytes = 2, kVarint = 0;
  auto tag = [](int field, int type) { return (field << 3) | type; };
  v1beta1::ContainerAllocateResponse response;
  (*response.mutable_envs())["a"] = "b";
  EXPECT_EQ(FirstTag(response), tag(1, kBytes));
  response.Clear();
  response.add_mounts();
  EXPECT_EQ(FirstTag(response), tag(2, kBytes));
  response.Clear();
  response.add_devices();
  EXPECT_EQ(FirstTag(response), tag(3, kBytes));
  response.Clear();
  (*response.mutable_annotations())["a"] = "b";
  EXPECT_EQ(FirstTag(response), tag(4, kBytes));
  response.Clear();
  response.add_cdi_devices()->set_name("x");
  EXPECT_EQ(Bytes(response), std::string("\x2a\x03\x0a\x01x", 5));

  v1beta1::Device device;
  device.set_id("d");
  EXPECT_EQ(FirstTag(device), tag(1, kBytes));
  device.Clear();
  device.set_health("Healthy");
  EXPECT_EQ(FirstTag(device), tag(2, kBytes));
  device.Clear();
  device.mutable_topology()->add_nodes()->set_id(1);
  EXPECT_EQ(Bytes(device), std::string("\x1a\x04\x0a\x02\x08\x01", 6));

  v1beta1::ContainerPreferredAllocationRequest preferred;
  preferred.add_available_deviceids("a");
  EXPECT_EQ(FirstTag(preferred), tag(1, kBytes));
  preferred.Clear();
  preferred.add_must_include_deviceids("a");
  EXPECT_EQ(FirstTag(preferred), tag(2, kBytes));
  preferred.Clear();
  preferred.set_allocation_size(2);
  EXPECT_EQ(FirstTag(preferred), tag(3, kVarint));

  v1beta1::RegisterRequest request;
  request.set_version("v1beta1");
  EXPECT_EQ(FirstTag(request), tag(1, kBytes));
  request.Clear();
  request.set_endpoint("e");
  EXPECT_EQ(FirstTag(request), tag(2, kBytes));
  request.Clear();
  request.set_resource_name("r");
  EXPECT_EQ(FirstTag(request), tag(3, kBytes));
  request.Clear();
  request.mutable_options()->set_get_preferred_allocation_available(true);
  EXPECT_EQ(Bytes(request), std::string("\x22\x02\x10\x01", 4));
  v1beta1::DevicePluginOptions options;
  options.set_pre_start_required(true);
  EXPECT_EQ(FirstTag(options), tag(1, kVarint));
}

TEST(DevicePluginProto, ListAndWatchResponseWithTopologySurvivesRoundTrip) {
  v1beta1::ListAndWatchResponse original;
  auto* device = original.add_devices();
  device->set_id("kmm-ci-a0");
  device->set_health("Healthy");
  device->mutable_topology()->add_nodes()->set_id(1);
  const v1beta1::ListAndWatchResponse parsed = RoundTrip(original);
  EXPECT_EQ(Bytes(original), Bytes(parsed));
  EXPECT_EQ(parsed.devices(0).topology().nodes(0).id(), 1);
}

TEST(PluginRegistrationProto, PluginInfoSurvivesRoundTrip) {
  pluginregistration::PluginInfo original;
  original.set_type("DevicePlugin");
  original.set_name("example.com/kmm-ci-a");
  original.set_endpoint("/var/lib/kubelet/plugins_registry/kmm-ci-a.sock");
  original.add_supported_versions("v1beta1");
  EXPECT_TRUE(MessageDifferencer::Equals(original, RoundTrip(original)));

  pluginregistration::RegistrationStatus status;
  status.set_plugin_registered(false);
  status.set_error("resource already registered");
  EXPECT_TRUE(MessageDifferencer::Equals(status, RoundTrip(status)));
}

TEST(PodResourcesProto, ListResponseSurvivesRoundTrip) {
  v1::ListPodResourcesResponse original;
  auto* pod = original.add_pod_resources();
  pod->set_name("uses-kmm-ci-a");
  pod->set_namespace_("default");
  auto* container = pod->add_containers();
  container->set_name("app");
  auto* devices = container->add_devices();
  devices->set_resource_name("example.com/kmm-ci-a");
  devices->add_device_ids("kmm-ci-a0");
  devices->mutable_topology()->add_nodes()->set_id(0);
  auto* claim = container->add_dynamic_resources()->add_claim_resources();
  claim->add_cdi_devices()->set_name("example.com/kmm-ci-a=kmm-ci-a0");
  claim->set_share_id("share-1");
  const v1::ListPodResourcesResponse parsed = RoundTrip(original);
  EXPECT_TRUE(MessageDifferencer::Equals(original, parsed));
  EXPECT_TRUE(
      parsed.pod_resources(0).containers(0).dynamic_resources(0).claim_resources(0).has_share_id());
}

}  // namespace
