#include "deviceplugin/allocation.h"

#include <gtest/gtest.h>

#include "deviceplugin/device_source.h"

namespace kmm::deviceplugin {
namespace {

ResourceConfig Resource() {
  ResourceConfig resource;
  resource.resource_name = "example.com/kmm-ci-a";
  resource.match.kernel = "kmm-ci-a*";
  resource.container_path = "/dev/kmm/{name}";
  resource.mounts = {{"/etc/kmm", "/var/lib/kmm", true}};
  resource.envs = {{"KMM_CI", "1"}};
  return resource;
}

std::vector<Device> Devices() {
  return {{"kmm-ci-a0", "/sys/devices/virtual/misc/kmm-ci-a0", "/dev/kmm-ci-a0", true, 0},
          {"kmm-ci-a1", "/sys/devices/virtual/misc/kmm-ci-a1", "/dev/kmm-ci-a1", true, 1},
          {"kmm-ci-a2", "/sys/devices/virtual/misc/kmm-ci-a2", "/dev/kmm-ci-a2", false, 1},
          {"kmm-ci-a3", "/sys/devices/virtual/misc/kmm-ci-a3", "/dev/kmm-ci-a3", true, 1},
          {"kmm-ci-a4", "/sys/devices/virtual/misc/kmm-ci-a4", "/dev/kmm-ci-a4", true, -1}};
}

TEST(Advertise, ListsEveryDeviceWithHealthAndTopology) {
  const Advertised advertised = Advertise(Resource(), Devices());
  const v1beta1::ListAndWatchResponse list = ToListAndWatch(advertised);
  ASSERT_EQ(list.devices_size(), 5);
  EXPECT_EQ(list.devices(0).id(), "kmm-ci-a0");
  EXPECT_EQ(list.devices(0).health(), "Healthy");
  ASSERT_EQ(list.devices(1).topology().nodes_size(), 1);
  EXPECT_EQ(list.devices(1).topology().nodes(0).id(), 1);
  EXPECT_EQ(list.devices(2).health(), "Unhealthy") << "unhealthy devices stay listed";
  EXPECT_FALSE(list.devices(4).has_topology()) << "numa_node -1 means no topology";
}

TEST(Advertise, SharingAdvertisesEachDeviceReplicasTimes) {
  ResourceConfig resource = Resource();
  resource.replicas = 3;
  const Advertised advertised = Advertise(resource, {Devices()[0]});
  const v1beta1::ListAndWatchResponse list = ToListAndWatch(advertised);
  ASSERT_EQ(list.devices_size(), 3);
  EXPECT_EQ(list.devices(0).id(), "kmm-ci-a0-0");
  EXPECT_EQ(list.devices(2).id(), "kmm-ci-a0-2");
  // Two replicas of one device in a container give one device node.
  auto response = AllocateContainer(resource, advertised, {"kmm-ci-a0-0", "kmm-ci-a0-2"});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->devices_size(), 1);
}

TEST(PreferredAllocation, PrefersOneNumaNodeAndReturnsExactlyTheSize) {
  const Advertised advertised = Advertise(Resource(), Devices());
  // Node 1 has two healthy candidates (a1, a3), node 0 one.
  const std::vector<std::string> chosen =
      PreferredAllocation(advertised, {"kmm-ci-a0", "kmm-ci-a1", "kmm-ci-a3", "kmm-ci-a4"}, {}, 2);
  EXPECT_EQ(chosen, (std::vector<std::string>{"kmm-ci-a1", "kmm-ci-a3"}));
}

TEST(PreferredAllocation, HonoursMustIncludeAndItsNode) {
  const Advertised advertised = Advertise(Resource(), Devices());
  const std::vector<std::string> chosen = PreferredAllocation(
      advertised, {"kmm-ci-a0", "kmm-ci-a1", "kmm-ci-a3", "kmm-ci-a4"}, {"kmm-ci-a0"}, 2);
  ASSERT_EQ(chosen.size(), 2u);
  EXPECT_EQ(chosen[0], "kmm-ci-a0");
  const std::vector<std::string> spill = PreferredAllocation(
      advertised, {"kmm-ci-a0", "kmm-ci-a1", "kmm-ci-a3", "kmm-ci-a4"}, {"kmm-ci-a0"}, 3);
  EXPECT_EQ(spill.size(), 3u) << "fills from other nodes when one is not enough";
  EXPECT_EQ(PreferredAllocation(advertised, {"kmm-ci-a0"}, {}, 1),
            std::vector<std::string>{"kmm-ci-a0"});
}

TEST(AllocateContainer, ReturnsDeviceNodesMountsAndEnvs) {
  const Advertised advertised = Advertise(Resource(), Devices());
  auto response = AllocateContainer(Resource(), advertised, {"kmm-ci-a0", "kmm-ci-a1"});
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->devices_size(), 2);
  EXPECT_EQ(response->devices(0).host_path(), "/dev/kmm-ci-a0");
  EXPECT_EQ(response->devices(0).container_path(), "/dev/kmm/kmm-ci-a0");
  EXPECT_EQ(response->devices(0).permissions(), "rw");
  ASSERT_EQ(response->mounts_size(), 1);
  EXPECT_EQ(response->mounts(0).host_path(), "/var/lib/kmm");
  EXPECT_TRUE(response->mounts(0).read_only());
  EXPECT_EQ(response->envs().at("KMM_CI"), "1");
  EXPECT_EQ(response->cdi_devices_size(), 0);
}

TEST(AllocateContainer, RefusesUnknownAndUnhealthyDevicesByName) {
  const Advertised advertised = Advertise(Resource(), Devices());
  auto unknown = AllocateContainer(Resource(), advertised, {"kmm-ci-a0", "kmm-ci-a9"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unknown.status().message(),
            "device kmm-ci-a9 is not a device of example.com/kmm-ci-a on this node");
  auto unhealthy = AllocateContainer(Resource(), advertised, {"kmm-ci-a2"});
  EXPECT_EQ(unhealthy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(unhealthy.status().message(), "device kmm-ci-a2 of example.com/kmm-ci-a is unhealthy");
}

TEST(Cdi, AllocateNamesCdiDevicesAndTheSpecDescribesThem) {
  ResourceConfig resource = Resource();
  resource.cdi.enabled = true;
  const Advertised advertised = Advertise(resource, Devices());
  auto response = AllocateContainer(resource, advertised, {"kmm-ci-a1"});
  ASSERT_TRUE(response.ok());
  ASSERT_EQ(response->cdi_devices_size(), 1);
  EXPECT_EQ(response->cdi_devices(0).name(), "example.com/kmm-ci-a=kmm-ci-a1");
  const nlohmann::json spec = CdiSpec(resource, advertised);
  EXPECT_EQ(spec["kind"], "example.com/kmm-ci-a");
  EXPECT_EQ(spec["devices"].size(), 5u);
  EXPECT_EQ(spec["devices"][1]["name"], "kmm-ci-a1");
  EXPECT_EQ(spec["devices"][1]["containerEdits"]["deviceNodes"][0]["hostPath"], "/dev/kmm-ci-a1");
  EXPECT_EQ(spec["devices"][1]["containerEdits"]["deviceNodes"][0]["path"], "/dev/kmm/kmm-ci-a1");
  EXPECT_EQ(spec["containerEdits"]["env"][0], "KMM_CI=1");
  EXPECT_EQ(CdiSpecFileName(resource), "kmm-example.com_kmm-ci-a.json");
}

TEST(DeviceIdFrom, KeepsShortNamesAndBoundsLongOnes) {
  EXPECT_EQ(DeviceIdFrom("kmm-ci-a0"), "kmm-ci-a0");
  EXPECT_EQ(DeviceIdFrom("pci:0000:3b:00.0"), "pci_0000_3b_00.0");
  const std::string long_name(80, 'x');
  const std::string id = DeviceIdFrom(long_name);
  EXPECT_LE(id.size(), 63u);
  EXPECT_EQ(id, DeviceIdFrom(long_name)) << "stable";
  EXPECT_NE(id, DeviceIdFrom(std::string(79, 'x') + "y"));
}

}  // namespace
}  // namespace kmm::deviceplugin
