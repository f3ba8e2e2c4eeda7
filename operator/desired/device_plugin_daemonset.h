// The DaemonSet of a Module's third-party device plugin (spec.devicePlugin.container, as
// upstream): it runs only on nodes labelled <ns>.<name>.ready, so its pods leave before the
// operator lets a loader unload (the operator removes that label first).
#ifndef KMM_OPERATOR_DESIRED_DEVICE_PLUGIN_DAEMONSET_H_
#define KMM_OPERATOR_DESIRED_DEVICE_PLUGIN_DAEMONSET_H_

#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "operator/api/module.h"
#include "operator/desired/settings.h"

namespace kmm::desired {

std::string DevicePluginDaemonSetName(std::string_view module_name);

// Whether the Module has a third-party plugin image (rather than none or the built-in one).
bool HasThirdPartyDevicePlugin(const api::Module& module);

// Requires HasThirdPartyDevicePlugin(module).
nlohmann::json DevicePluginDaemonSetFor(const api::Module& module,
                                        const OperatorSettings& settings);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_DEVICE_PLUGIN_DAEMONSET_H_
