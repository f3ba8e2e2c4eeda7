// The Jobs that make a kernel's module image in the cluster, built by pure functions
// (docs/design.md §7.5) that tests compare whole, as upstream KMM builds them:
//
//  - the build Job runs the builder (kaniko's executor) on the Dockerfile of
//    `build.dockerfileConfigMap`, with the build args (the injected KERNEL_VERSION,
//    KERNEL_FULL_VERSION, MOD_NAME, MOD_NAMESPACE among them), and pushes the Module's
//    containerImage for that kernel;
//  - the sign Job runs the builder on a generated Dockerfile that copies the unsigned image's
//    modules into the signer image, runs the kernel's sign-file on each of `filesToSign` with
//    the key and certificate Secrets, and copies them back over the unsigned image, which it
//    pushes as containerImage.
//
// Each Job carries a hash of everything that decides its output (its pod template, and what
// the template only names: the Dockerfile ConfigMap's contents, the signing key and
// certificate), so the operator rebuilds when an input changes and never otherwise.
#ifndef KMM_OPERATOR_DESIRED_BUILD_JOB_H_
#define KMM_OPERATOR_DESIRED_BUILD_JOB_H_

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "operator/api/kernel_mapping.h"
#include "operator/api/module.h"
#include "operator/desired/labels.h"  // InputsHash
#include "operator/desired/settings.h"

namespace kmm::desired {

// On build and sign Jobs: the hash of their inputs.
inline constexpr std::string_view kInputsHashAnnotation = "kmm.sigs.x-k8s.io/inputs-hash";
// On the images they push, the same hash as an image label: the registry then tells the
// operator what an existing image was built (and signed) from, across Job clean-ups and
// operator restarts. An image without them was pushed by someone else and is used as it is.
inline constexpr std::string_view kBuildHashImageLabel = "kmm.sigs.x-k8s.io/build-hash";
inline constexpr std::string_view kSignHashImageLabel = "kmm.sigs.x-k8s.io/sign-hash";
// On build and sign Jobs: the kernel (as the nodes report it) and the image they push.
inline constexpr std::string_view kKernelAnnotation = "kmm.sigs.x-k8s.io/kernel-version";
inline constexpr std::string_view kImageAnnotation = "kmm.sigs.x-k8s.io/image";
inline constexpr std::string_view kBuildComponent = "build";
inline constexpr std::string_view kSignComponent = "sign";
// What the Job controller puts on a Job's pods: the Job's uid (Kubernetes 1.27+), and the
// older name of the same label. They tell the pods of a Job from those of an earlier Job of
// the same name.
inline constexpr std::string_view kJobUidLabel = "batch.kubernetes.io/controller-uid";
inline constexpr std::string_view kLegacyJobUidLabel = "controller-uid";
// The Dockerfile ConfigMap key upstream reads; the ConfigMap's other keys become files of the
// build context beside it (kmm's addition: a module's source can travel in the ConfigMap).
inline constexpr std::string_view kDockerfileKey = "dockerfile";
// Where the Dockerfile and the build context are, in the builder's container.
inline constexpr std::string_view kWorkspace = "/workspace";

// <module>-build-<hash of the kernel> and <module>-sign-<...>: one of each per kernel.
std::string BuildJobName(std::string_view module_name, std::string_view kernel);
std::string SignJobName(std::string_view module_name, std::string_view kernel);

// What a build Job needs that the Module only names: the Dockerfile ConfigMap's `data` and
// `binaryData` (file name -> contents; binaryData stays base64, as the API serves it).
struct BuildContext {
  std::map<std::string, std::string> data;
  std::map<std::string, std::string> binary_data;
  // Anything else that must rebuild when it changes (spec.imageRebuildTriggerGeneration):
  // part of the inputs hash only.
  std::string other_inputs;
};

// The build Job for `mapping` (which must have `build`). Fails, naming the ConfigMap, when it
// has no `dockerfile` key.
absl::StatusOr<nlohmann::json> BuildJobFor(const api::Module& module,
                                           const api::ResolvedMapping& mapping,
                                           const BuildContext& context,
                                           const OperatorSettings& settings);

// The image the sign Job signs: what the build pushes when the mapping builds, else
// sign.unsignedImage.
std::string UnsignedImageFor(const api::ResolvedMapping& mapping);

// The Dockerfile the sign Job runs (upstream's recipe): the unsigned image's `dirName` is
// copied under /opt in the signer image, each of `filesToSign` there is signed with sha256,
// and the result is copied back over the unsigned image. A file to sign that is missing
// fails the build with its name.
std::string SignDockerfile(const api::Module& module, const api::ResolvedMapping& mapping,
                           const OperatorSettings& settings);

// The sign Job for `mapping` (which must have `sign`). `inputs` stands for what the Job only
// names: the contents of the key and certificate Secrets (a hash of them) and, after a build,
// the build's inputs hash, so a rotated key or a rebuilt image is signed again.
nlohmann::json SignJobFor(const api::Module& module, const api::ResolvedMapping& mapping,
                          std::string_view inputs, const OperatorSettings& settings);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_BUILD_JOB_H_
