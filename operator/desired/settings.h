// What the operator's flags decide about the objects it builds.
#ifndef KMM_OPERATOR_DESIRED_SETTINGS_H_
#define KMM_OPERATOR_DESIRED_SETTINGS_H_

#include <cstdint>
#include <string>
#include <vector>

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
  // The image build and sign Jobs run (--builder-image): kaniko's executor, as upstream's
  // default, at the version kmm is tested with. `build.kanikoParams.tag` picks another tag.
  std::string builder_image = "gcr.io/kaniko-project/executor:v1.23.2";
  // Extra arguments for every build and sign (--builder-arg), e.g. kaniko's cache flags.
  std::vector<std::string> builder_args;
  // The image whose /usr/local/bin/sign-file signs modules (--signer-image): `make images`
  // builds it from the kernel's own sign-file.
  std::string signer_image = std::string("kmm-signer:v") + kVersion;
  // Finished build and sign Jobs (and their pods, with the logs) are deleted this long after
  // they end: a failed one stays this long to be inspected, then the build is retried.
  int64_t finished_job_ttl_seconds = 3600;
};

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_SETTINGS_H_
