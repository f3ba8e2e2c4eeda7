// What the operator's flags decide about the objects it builds.
#ifndef KMM_OPERATOR_DESIRED_SETTINGS_H_
#define KMM_OPERATOR_DESIRED_SETTINGS_H_

#include <cstdint>
#include <string>

#include "common/version.h"

namespace kmm::desired {

struct OperatorSettings {
  // The image with kmm-loader and kmm-copy (--loader-image). By default the one built with
  // this operator (`make images` tags v<version>), never a moving tag such as `latest`: a node
  // that pulls later must get the same loader.
  std::string loader_image = std::string("kmm-loader:v") + kVersion;
  std::string loader_image_pull_policy = "IfNotPresent";
  // The kubelet's device-plugin directory on the nodes.
  std::string device_plugin_dir = "/var/lib/kubelet/device-plugins";
  // Where loaders put firmware on the host; the kernel is pointed at it
  // (/lib/firmware is read-only on some node images, e.g. Container-Optimized OS).
  std::string firmware_host_path = "/var/lib/firmware";
  // The PriorityClass of the pods kmm runs on nodes: loaders (and their unload pods) and
  // device plugins (--priority-class; empty: none). Not system-node-critical: those pods run
  // in each Module's namespace, and managed clusters (GKE's kube-system ResourceQuota scoped
  // to the system-*-critical classes) refuse system-*-critical pods outside namespaces with
  // such a quota. manifests/priority-class.yaml creates this one (value 1000000000, the
  // highest a non-system class may have).
  std::string priority_class = "kmm-node-critical";
  // How long a loader retries unloading a busy module; the pod's grace period exceeds it.
  int64_t unload_timeout_seconds = 60;
};

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_SETTINGS_H_
