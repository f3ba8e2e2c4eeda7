// The pod that retries an unload a loader pod gave up on (a module still in use when its
// grace period ran out). Built from the loader DaemonSet's own template, so it copies the same
// modules and runs the same config, as `kmm-loader unload` pinned to the one node; the
// kubelet restarts it with its own backoff until the unload succeeds (restartPolicy
// OnFailure). The operator keeps the loader pod's unload finalizer until this pod succeeds.
#ifndef KMM_OPERATOR_DESIRED_UNLOAD_POD_H_
#define KMM_OPERATOR_DESIRED_UNLOAD_POD_H_

#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace kmm::desired {

// <loader pod name>-unload: one retry pod per stopped loader pod, found again by name.
std::string UnloadPodName(std::string_view loader_pod_name);

// `loader_daemonset` as LoaderDaemonSetFor builds it; `node` is where the loader pod ran.
nlohmann::json UnloadPodFor(const nlohmann::json& loader_daemonset,
                            std::string_view loader_pod_name, std::string_view node);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_UNLOAD_POD_H_
