// In-cluster builds and signing (docs/design.md §5, §7.8): for a kernel whose mapping has
// `build` or `sign`, makes sure its module image exists — and was built and signed from
// today's inputs — before its loaders start.
//
// The registry is the record. Build and sign Jobs label the images they push with the hash
// of their inputs (desired::kBuildHashImageLabel, kSignHashImageLabel), so the operator
// asks the registry (with imageRepoSecret's credentials) what an existing image was made
// from: the same hash means done, another means the inputs changed and it is made again, no
// kmm label means someone else pushed it and it is used as it is (upstream's rule: an image
// that exists is not built). A Job whose inputs changed is replaced; a failed Job stays
// (with its pods and their logs) until the Job controller's TTL removes it, and the next
// reconcile makes a new one: retries are spaced by that TTL, never a hot loop.
#ifndef KMM_OPERATOR_CONTROLLERS_IMAGE_PIPELINE_H_
#define KMM_OPERATOR_CONTROLLERS_IMAGE_PIPELINE_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "nlohmann/json.hpp"
#include "operator/api/module.h"
#include "operator/controllers/caches.h"
#include "operator/desired/module_status.h"
#include "operator/desired/plan.h"
#include "operator/desired/settings.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/kube_client.h"
#include "operator/registry/registry_client.h"

namespace kmm::controllers {

// Where a kernel's module image stands.
struct ImageReadiness {
  bool ready = false;
  // When ready: what the loaders pull, the image pinned to its digest when the registry
  // sent one, so that a rebuild under the same tag reaches the nodes.
  std::string image;
  // When not ready: desired::ImageProblem's reason and message.
  desired::ImageProblem problem;
};

class ImagePipeline {
 public:
  ImagePipeline(kube::KubeClient& client, Caches& caches, kube::EventRecorder& events,
                registry::RegistryClient& registry, const desired::OperatorSettings& settings,
                Clock& clock = RealClock());

  // Whether `target`'s image is ready; creates, replaces or waits for its build and sign
  // Jobs. Errors are API errors only; everything else is an answer.
  absl::StatusOr<ImageReadiness> Ensure(const api::Module& module, const nlohmann::json& object,
                                        const desired::LoaderTarget& target);

  // Deletes the Module's build and sign Jobs for kernels not in `kernels`.
  absl::Status DeleteJobsExcept(const api::Module& module, const std::set<std::string>& kernels);

  // How long registry answers are reused.
  static constexpr absl::Duration kImageCacheTtl = absl::Seconds(60);

 private:
  struct Step;  // one of build and sign, for one kernel
  absl::StatusOr<std::optional<ImageReadiness>> Advance(const api::Module& module,
                                                        const nlohmann::json& object,
                                                        const Step& step,
                                                        const registry::ImageStatus& image);
  // The image's status in the registry, cached for kImageCacheTtl.
  absl::StatusOr<registry::ImageStatus> CheckImage(const api::Module& module,
                                                   const std::string& image,
                                                   const api::TLSOptions& tls);
  void ForgetImage(const std::string& image);
  // The Secret's data, or an error naming it and the field that named it.
  absl::StatusOr<nlohmann::json> SecretData(const std::string& ns, const std::string& name,
                                            std::string_view field);
  // Records `reason` on the Module once per Job (by uid), not on every reconcile.
  void RecordOnce(const nlohmann::json& object, const std::string& job_uid, kube::EventType type,
                  const std::string& reason, const std::string& message);
  // The pods of `step`'s Job `job` (from the pod cache).
  std::vector<kube::ObjectPtr> JobPods(const api::Module& module, const Step& step,
                                       const nlohmann::json& job);
  // A failed pod's termination message (its log tail).
  std::string FailureMessage(const api::Module& module, const Step& step,
                             const nlohmann::json& job);
  // Why a pod of the active Job cannot start, and what to check; "" when none is stuck.
  std::string StartProblem(const api::Module& module, const Step& step, const nlohmann::json& job);

  kube::KubeClient& client_;
  Caches& caches_;
  kube::EventRecorder& events_;
  registry::RegistryClient& registry_;
  const desired::OperatorSettings& settings_;
  Clock& clock_;

  absl::Mutex mu_;
  struct CachedImage {
    registry::ImageStatus status;
    absl::Time expires;
  };
  std::map<std::string, CachedImage> images_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> reported_ ABSL_GUARDED_BY(mu_);  // "<job uid>/<reason>"
};

}  // namespace kmm::controllers

#endif  // KMM_OPERATOR_CONTROLLERS_IMAGE_PIPELINE_H_
