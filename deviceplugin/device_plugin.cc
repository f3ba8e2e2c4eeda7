#include "deviceplugin/device_plugin.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace kmm::deviceplugin {
namespace {
constexpr absl::Duration kLongestRegisterBackoff = absl::Seconds(10);

ino_t InodeOf(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 ? info.st_ino : 0;
}
}  // namespace

std::string SocketNameFor(const std::string& resource_name) {
  std::string name = resource_name;
  std::replace(name.begin(), name.end(), '/', '_');
  return fmt::format("kmm-{}.sock", name);
}

absl::StatusOr<std::unique_ptr<DevicePlugin>> DevicePlugin::Create(
    DevicePluginConfig config, DevicePluginOptions options, std::unique_ptr<DeviceSource> source) {
  std::error_code error;
  std::filesystem::create_directories(options.device_plugin_dir, error);
  const int inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0) return ErrnoError(errno, "inotify_init1");
  if (inotify_add_watch(inotify_fd, options.device_plugin_dir.c_str(),
                        IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0) {
    const int err = errno;
    close(inotify_fd);
    return ErrnoError(err, fmt::format("watch {}", options.device_plugin_dir));
  }
  const int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int err = errno;
    close(inotify_fd);
    return ErrnoError(err, "eventfd");
  }
  return std::unique_ptr<DevicePlugin>(new DevicePlugin(std::move(config), std::move(options),
                                                        std::move(source), inotify_fd, wake_fd));
}

DevicePlugin::DevicePlugin(DevicePluginConfig config, DevicePluginOptions options,
                           std::unique_ptr<DeviceSource> source, int inotify_fd, int wake_fd)
    : config_(std::move(config)),
      options_(std::move(options)),
      source_(std::move(source)),
      inotify_fd_(inotify_fd),
      wake_fd_(wake_fd) {}

DevicePlugin::~DevicePlugin() {
  Stop();
  close(inotify_fd_);
  close(wake_fd_);
}

absl::Status DevicePlugin::Start() {
  for (const ResourceConfig& config : config_.resources) {
    Resource resource;
    resource.server = std::make_unique<ResourceServer>(
        config,
        (std::filesystem::path(options_.device_plugin_dir) / SocketNameFor(config.resource_name))
            .string());
    resources_.push_back(std::move(resource));
  }
  for (Resource& resource : resources_) {
    Refresh(resource);
    RETURN_IF_ERROR(resource.server->Start());
  }
  started_ = true;
  events_ = std::thread([this] { EventLoop(); });
  return absl::OkStatus();
}

void DevicePlugin::Stop() {
  if (!started_ || stopping_.exchange(true)) return;
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) != sizeof(one)) {
    spdlog::error("device plugin: cannot wake the event thread: {}", std::strerror(errno));
  }
  events_.join();
  for (Resource& resource : resources_) resource.server->Stop();
  spdlog::info("device plugin stopped");
}

void DevicePlugin::Refresh(Resource& resource) {
  const ResourceConfig& config = resource.server->resource();
  absl::StatusOr<std::vector<Device>> devices = source_->List(config);
  if (!devices.ok()) {
    spdlog::error("listing devices for {}: {}", config.resource_name, devices.status().message());
    return;
  }
  if (resource.listed && *devices == resource.devices) return;
  resource.listed = true;
  resource.devices = std::move(*devices);
  Publish(resource);
}

void DevicePlugin::Apply(Resource& resource, const std::vector<DeviceEvent>& events) {
  const ResourceConfig& config = resource.server->resource();
  std::vector<Device> devices = resource.devices;
  for (const DeviceEvent& event : events) {
    auto same = [&](const Device& d) { return d.syspath == event.syspath; };
    std::optional<Device> now;
    if (event.action != "remove") now = source_->Lookup(config, event.syspath);
    auto it = std::find_if(devices.begin(), devices.end(), same);
    if (it != devices.end() && now) {
      *it = std::move(*now);
    } else if (it != devices.end()) {
      devices.erase(it);  // removed, or no longer matching (e.g. its driver unbound)
    } else if (now) {
      devices.insert(std::upper_bound(devices.begin(), devices.end(), *now,
                                      [](const Device& a, const Device& b) { return a.id < b.id; }),
                     std::move(*now));
    }
  }
  if (devices == resource.devices) return;  // events for other resources
  resource.devices = std::move(devices);
  Publish(resource);
}

void DevicePlugin::Publish(Resource& resource) {
  const ResourceConfig& config = resource.server->resource();
  Advertised advertised = Advertise(config, resource.devices);
  int healthy = 0;
  for (const Device& device : advertised.devices) healthy += device.healthy ? 1 : 0;
  spdlog::info("{}: {} devices ({} healthy), {} advertised", config.resource_name,
               advertised.devices.size(), healthy, advertised.by_id.size());
  if (config.cdi.enabled) WriteCdiSpec(resource, advertised);
  resource.server->Update(std::move(advertised));
}

void DevicePlugin::WriteCdiSpec(const Resource& resource, const Advertised& advertised) {
  // Written when devices change, never on the Allocate path: write, then rename.
  const ResourceConfig& config = resource.server->resource();
  const std::filesystem::path dir = config.cdi.spec_dir;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  const std::filesystem::path target = dir / CdiSpecFileName(config);
  const std::filesystem::path temporary = target.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << CdiSpec(config, advertised).dump(2) << "\n";
    if (!out) {
      spdlog::error("cannot write the CDI spec {}", temporary.string());
      return;
    }
  }
  std::filesystem::rename(temporary, target, error);
  if (error) spdlog::error("cannot install the CDI spec {}: {}", target.string(), error.message());
}

void DevicePlugin::RegisterDue() {
  const std::string kubelet_socket =
      (std::filesystem::path(options_.device_plugin_dir) / options_.kubelet_socket_name).string();
  const absl::Time now = absl::Now();
  for (Resource& resource : resources_) {
    if (resource.registered || resource.next_attempt > now) continue;
    if (!std::filesystem::exists(kubelet_socket)) {
      // No timer: the directory watch wakes us when the kubelet creates its socket.
      spdlog::info("waiting for the kubelet to create {}", kubelet_socket);
      resource.next_attempt = absl::InfiniteFuture();
      continue;
    }
    const std::string endpoint =
        std::filesystem::path(resource.server->socket_path()).filename().string();
    absl::Status status =
        RegisterWithKubelet(kubelet_socket, endpoint, resource.server->resource().resource_name);
    if (status.ok()) {
      resource.registered = true;
      resource.kubelet_inode = InodeOf(kubelet_socket);
      resource.backoff = absl::Milliseconds(100);
      registrations_.fetch_add(1);
      spdlog::info("registered {} with the kubelet (endpoint {})",
                   resource.server->resource().resource_name, endpoint);
      continue;
    }
    spdlog::warn("{}; retrying in {}", status.message(), absl::FormatDuration(resource.backoff));
    resource.next_attempt = now + resource.backoff;
    resource.backoff = std::min(resource.backoff * 2, kLongestRegisterBackoff);
  }
}

void DevicePlugin::HandleDirectoryEvents() {
  alignas(inotify_event) char buffer[4096];
  while (true) {
    const ssize_t length = read(inotify_fd_, buffer, sizeof(buffer));
    if (length <= 0) return;
    for (ssize_t offset = 0; offset < length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      const std::string name = event->len > 0 ? event->name : "";
      const bool created = (event->mask & (IN_CREATE | IN_MOVED_TO)) != 0;
      if (created && name == options_.kubelet_socket_name) {
        // A new kubelet: it wiped the directory and wants every plugin to register again.
        // (Not when this is the socket we already registered with: its creation event may
        // arrive after we found the socket and registered.)
        const ino_t inode = InodeOf(
            (std::filesystem::path(options_.device_plugin_dir) / options_.kubelet_socket_name)
                .string());
        bool known = true;
        for (const Resource& resource : resources_) {
          known = known && resource.registered && resource.kubelet_inode == inode;
        }
        if (known) continue;
        spdlog::info("the kubelet (re)started; registering again");
        for (Resource& resource : resources_) {
          resource.registered = false;
          resource.next_attempt = absl::InfinitePast();
          resource.backoff = absl::Milliseconds(100);
        }
        continue;
      }
      if (created) continue;
      for (Resource& resource : resources_) {
        if (std::filesystem::path(resource.server->socket_path()).filename() != name) continue;
        if (std::filesystem::exists(resource.server->socket_path())) continue;
        spdlog::info("{} was removed (kubelet restart); serving it again",
                     resource.server->socket_path());
        resource.server->Stop();
        if (absl::Status status = resource.server->Start(); !status.ok()) {
          spdlog::error("{}", status.message());
        }
        resource.server->Update(Advertise(resource.server->resource(), resource.devices));
        resource.registered = false;
        resource.next_attempt = absl::InfinitePast();
      }
    }
  }
}

void DevicePlugin::EventLoop() {
  const int udev_fd = source_->EventFd();
  while (!stopping_.load()) {
    RegisterDue();
    absl::Time next = absl::InfiniteFuture();
    for (const Resource& resource : resources_) {
      if (!resource.registered) next = std::min(next, resource.next_attempt);
    }
    int timeout_ms = -1;
    if (next != absl::InfiniteFuture()) {
      timeout_ms =
          static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(next - absl::Now()) + 1));
    }
    pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}, {udev_fd, POLLIN, 0}};
    const int ready = poll(fds, udev_fd >= 0 ? 3 : 2, timeout_ms);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("device plugin: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    if (fds[1].revents != 0) HandleDirectoryEvents();
    if (udev_fd >= 0 && fds[2].revents != 0) {
      const std::vector<DeviceEvent> events = source_->DrainEvents();
      if (!events.empty()) {
        for (Resource& resource : resources_) Apply(resource, events);
      }
    }
  }
}

}  // namespace kmm::deviceplugin
