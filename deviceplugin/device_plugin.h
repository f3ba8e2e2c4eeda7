// The device plugin: one ResourceServer per configured resource, kept up to date from a
// DeviceSource and registered with the kubelet, re-registered whenever the kubelet
// restarts. One event thread waits on the uevent monitor, an inotify watch of the
// device-plugin directory and a wake-up fd: nothing polls. kmm-loader runs it in-process
// (Start after loading, Stop before unloading); kmm-device-plugin runs it alone.
#ifndef KMM_DEVICEPLUGIN_DEVICE_PLUGIN_H_
#define KMM_DEVICEPLUGIN_DEVICE_PLUGIN_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "deviceplugin/config.h"
#include "deviceplugin/device_source.h"
#include "deviceplugin/resource_server.h"

namespace kmm::deviceplugin {

struct DevicePluginOptions {
  std::string device_plugin_dir = "/var/lib/kubelet/device-plugins";
  std::string kubelet_socket_name = "kubelet.sock";
};

class DevicePlugin {
 public:
  static absl::StatusOr<std::unique_ptr<DevicePlugin>> Create(DevicePluginConfig config,
                                                              DevicePluginOptions options,
                                                              std::unique_ptr<DeviceSource> source);
  ~DevicePlugin();

  // Serves every resource with its current devices, then registers in the background.
  absl::Status Start();
  // Closes the streams, stops serving, removes the sockets. Idempotent.
  void Stop();

  // Successful registrations so far, over all resources (for tests and logs).
  int registrations() const { return registrations_.load(); }

 private:
  struct Resource {
    std::unique_ptr<ResourceServer> server;
    std::vector<Device> devices;
    bool listed = false;  // devices holds a listing
    bool registered = false;
    ino_t kubelet_inode = 0;  // the kubelet socket we registered with
    absl::Time next_attempt = absl::InfinitePast();
    absl::Duration backoff = absl::Milliseconds(100);
  };

  DevicePlugin(DevicePluginConfig config, DevicePluginOptions options,
               std::unique_ptr<DeviceSource> source, int inotify_fd, int wake_fd);
  void EventLoop();
  void Refresh(Resource& resource);
  // Applies uevents to the resource's devices, touching only the devices they name.
  void Apply(Resource& resource, const std::vector<DeviceEvent>& events);
  void Publish(Resource& resource);
  void RegisterDue();
  void HandleDirectoryEvents();
  void WriteCdiSpec(const Resource& resource, const Advertised& advertised);

  const DevicePluginConfig config_;
  const DevicePluginOptions options_;
  std::unique_ptr<DeviceSource> source_;
  const int inotify_fd_;
  const int wake_fd_;
  std::vector<Resource> resources_;  // owned by the event thread once it runs
  std::thread events_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> registrations_{0};
  bool started_ = false;
};

// The socket file name used for a resource: "kmm-example.com_kmm-ci-a.sock".
std::string SocketNameFor(const std::string& resource_name);

}  // namespace kmm::deviceplugin

#endif  // KMM_DEVICEPLUGIN_DEVICE_PLUGIN_H_
