// The Module's status as a pure function of its plan and what was observed of the rollout
// (docs/design.md §7.6): upstream's counts, the Ready/Progressing/Degraded conditions, and the
// nodes with a problem. Bounded whatever the number of failing nodes: the API server refuses
// an object over its size limit, and a status that cannot be written reports nothing.
#ifndef KMM_OPERATOR_DESIRED_MODULE_STATUS_H_
#define KMM_OPERATOR_DESIRED_MODULE_STATUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "operator/desired/plan.h"

namespace kmm::desired {

// A node where the Module is not as it should be.
struct NodeProblem {
  std::string node;
  std::string reason;  // ImagePullFailed, LoaderCrashLooping, Unloading, UnloadBlocked, ...
  std::string message;
  bool operator==(const NodeProblem&) const = default;
};

// A kernel whose module image is not ready to load: being built or signed in the cluster, or
// failing to be. Its loaders wait; other kernels go ahead.
struct ImageProblem {
  std::string kernel;
  std::string image;
  // Building, Signing (progress); BuildFailed, SignFailed, ImageCheckFailed,
  // BuildInputMissing, SignInputMissing (degraded).
  std::string reason;
  std::string message;
  bool in_progress = false;
  bool operator==(const ImageProblem&) const = default;
};

// What the reconciler saw of the Module's pods and DaemonSets.
struct RolloutState {
  int loaders_desired = 0;  // from the loader DaemonSets' status
  int loaders_available = 0;
  int plugins_desired = 0;  // from the third-party plugin DaemonSet's status
  int plugins_available = 0;
  int outdated = 0;            // loader pods with an older template
  bool in_transition = false;  // pods starting, stopping or being replaced
  std::vector<NodeProblem> problems;
  std::vector<ImageProblem> images;  // kernels whose images are being or failing to be made
};

// At most this many nodes are listed in status.nodes and named in the Degraded message; the
// rest are counted.
inline constexpr size_t kMaxListedNodes = 20;
// A message of the Degraded condition stays under this many bytes (the CRD allows 32768).
inline constexpr size_t kMaxMessageBytes = 4096;

// One entry of status.conditions, without lastTransitionTime.
nlohmann::json Condition(std::string type, bool status, std::string reason, std::string message,
                         int64_t generation);

// The status the operator owns, without lastTransitionTime (the caller keeps those stable).
nlohmann::json ModuleStatusFor(const ModulePlan& plan, const RolloutState& rollout,
                               int64_t generation);

// status.nodes: the first kMaxListedNodes problems.
nlohmann::json ListedNodes(const std::vector<NodeProblem>& problems);

// The rollout once every planned pod runs and is ready: what `kmm-operator plan` expects.
RolloutState ConvergedRollout(const ModulePlan& plan);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_MODULE_STATUS_H_
