// kmm-loader-run's device plugin host: the plugin serves from this process.
#include "common/status.h"
#include "deviceplugin/device_plugin.h"
#include "loader/device_plugin_host.h"

namespace kmm::loader {
namespace {

class InProcessDevicePlugin final : public HostedDevicePlugin {
 public:
  explicit InProcessDevicePlugin(std::unique_ptr<deviceplugin::DevicePlugin> plugin)
      : plugin_(std::move(plugin)) {}
  void Stop() override { plugin_->Stop(); }

 private:
  std::unique_ptr<deviceplugin::DevicePlugin> plugin_;
};

}  // namespace

absl::Status EnsureDevicePluginHost(const LoaderConfig& /*config*/, char** /*argv*/) {
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HostedDevicePlugin>> StartDevicePlugin(
    const LoaderConfig& config, const std::string& device_plugin_dir) {
  if (!config.device_plugin.has_value()) return nullptr;
  ASSIGN_OR_RETURN(auto source,
                   deviceplugin::MakeUdevDeviceSource(config.device_plugin->uevent_source));
  deviceplugin::DevicePluginOptions options;
  options.device_plugin_dir = device_plugin_dir;
  ASSIGN_OR_RETURN(auto plugin, deviceplugin::DevicePlugin::Create(*config.device_plugin, options,
                                                                   std::move(source)));
  RETURN_IF_ERROR(plugin->Start());
  return std::make_unique<InProcessDevicePlugin>(std::move(plugin));
}

}  // namespace kmm::loader
