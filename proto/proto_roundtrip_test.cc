// Checks that the generated kubelet API code has the kubelet's wire identity: messages
// survive a serialize/parse round trip and the gRPC method paths are exactly the kubelet's.
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

TEST(DevicePluginProto, AllocateResponseSurvivesRoundTrip) {
  const v1beta1::AllocateResponse original = FullAllocateResponse();
  const v1beta1::AllocateResponse parsed = RoundTrip(original);
  EXPECT_TRUE(MessageDifferencer::Equals(original, parsed)) << parsed.DebugString();
  ASSERT_EQ(parsed.container_responses_size(), 2);
  const auto& first = parsed.container_responses(0);
  EXPECT_EQ(first.envs().at("KMM_CI_A_DEVICES"), "kmm-ci-a0,kmm-ci-a1");
  EXPECT_EQ(first.annotations().at("kmm.sigs.x-k8s.io/devices"), "2");
  EXPECT_EQ(first.mounts(0).host_path(), "/var/lib/kmm/kmm-ci-a");
  EXPECT_TRUE(first.mounts(0).read_only());
  EXPECT_EQ(first.devices(1).container_path(), "/dev/kmm-ci-a1");
  EXPECT_EQ(first.cdi_devices(1).name(), "example.com/kmm-ci-a=kmm-ci-a1");
}

// Field numbers are the wire contract with the kubelet: pin the ones we rely on.
TEST(DevicePluginProto, FieldNumbersMatchTheKubelet) {
  const auto* response = v1beta1::ContainerAllocateResponse::descriptor();
  EXPECT_EQ(response->FindFieldByName("envs")->number(), 1);
  EXPECT_EQ(response->FindFieldByName("mounts")->number(), 2);
  EXPECT_EQ(response->FindFieldByName("devices")->number(), 3);
  EXPECT_EQ(response->FindFieldByName("annotations")->number(), 4);
  EXPECT_EQ(response->FindFieldByName("cdi_devices")->number(), 5);
  const auto* device = v1beta1::Device::descriptor();
  EXPECT_EQ(device->FindFieldByName("ID")->number(), 1);
  EXPECT_EQ(device->FindFieldByName("health")->number(), 2);
  EXPECT_EQ(device->FindFieldByName("topology")->number(), 3);
  EXPECT_EQ(v1beta1::NUMANode::descriptor()->FindFieldByName("ID")->number(), 1);
  const auto* preferred = v1beta1::ContainerPreferredAllocationRequest::descriptor();
  EXPECT_EQ(preferred->FindFieldByName("available_deviceIDs")->number(), 1);
  EXPECT_EQ(preferred->FindFieldByName("must_include_deviceIDs")->number(), 2);
  EXPECT_EQ(preferred->FindFieldByName("allocation_size")->number(), 3);
  const auto* reg = v1beta1::RegisterRequest::descriptor();
  EXPECT_EQ(reg->FindFieldByName("version")->number(), 1);
  EXPECT_EQ(reg->FindFieldByName("endpoint")->number(), 2);
  EXPECT_EQ(reg->FindFieldByName("resource_name")->number(), 3);
  EXPECT_EQ(reg->FindFieldByName("options")->number(), 4);
}

TEST(DevicePluginProto, ListAndWatchResponseWithTopologySurvivesRoundTrip) {
  v1beta1::ListAndWatchResponse original;
  auto* device = original.add_devices();
  device->set_id("kmm-ci-a0");
  device->set_health("Healthy");
  device->mutable_topology()->add_nodes()->set_id(1);
  EXPECT_TRUE(MessageDifferencer::Equals(original, RoundTrip(original)));
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
