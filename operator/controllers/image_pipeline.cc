#include "operator/controllers/image_pipeline.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "fmt/format.h"
#include "operator/desired/build_job.h"
#include "operator/desired/labels.h"
#include "operator/kube/api_error.h"
#include "operator/kube/field_filter.h"
#include "operator/registry/docker_config.h"
#include "operator/registry/image_reference.h"
#include "spdlog/spdlog.h"

namespace kmm::controllers {
namespace {

using nlohmann::json;

std::string StringAt(const json& object, std::initializer_list<std::string_view> path) {
  const json& value = kube::FieldAt(object, path);
  return value.is_string() ? value.get<std::string>() : "";
}

bool HasCondition(const json& job, std::string_view type) {
  const json& conditions = kube::FieldAt(job, {"status", "conditions"});
  if (!conditions.is_array()) return false;
  for (const json& condition : conditions) {
    if (condition.value("type", "") == type && condition.value("status", "") == "True") return true;
  }
  return false;
}

// A build's log tail as a status message: without terminal colours (kaniko's log has them)
// and only its last lines, where the error is.
std::string LogTail(std::string_view log) {
  constexpr size_t kLines = 10;
  std::string plain;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i] == '\x1b' && i + 1 < log.size() && log[i + 1] == '[') {
      i += 2;
      while (i < log.size() && !(log[i] >= '@' && log[i] <= '~')) ++i;
      continue;
    }
    plain += log[i];
  }
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(plain, '\n', absl::SkipWhitespace())) {
    lines.emplace_back(absl::StripTrailingAsciiWhitespace(line));
  }
  if (lines.size() > kLines) lines.erase(lines.begin(), lines.end() - kLines);
  return absl::StrJoin(lines, "\n");
}

// The loaders pull the image by digest when the registry gave one: a rebuild under the same
// tag then changes the loader DaemonSet, and the nodes load the new build one by one.
std::string Pinned(const std::string& image, const std::string& digest) {
  if (digest.empty() || image.find('@') != std::string::npos) return image;
  return image + "@" + digest;
}

bool HasKmmLabels(const registry::ImageStatus& status) {
  return status.labels.contains(std::string(desired::kBuildHashImageLabel)) ||
         status.labels.contains(std::string(desired::kSignHashImageLabel));
}

}  // namespace

// One of the two ways an image is made, for one kernel.
struct ImagePipeline::Step {
  std::string component;  // desired::kBuildComponent or kSignComponent
  json job;               // the Job that makes it
  std::string hash;       // its inputs hash
  std::string image_label;
  std::string verb;             // "Build" or "Sign", for reasons: BuildCreated, SignFailed, ...
  std::string progress_reason;  // Building, Signing
  // What to check when its pod cannot start: the field that places it, the fields that name
  // its image, and what it mounts.
  std::string selector_field;
  std::string image_fields;
  std::string mounts;
};

ImagePipeline::ImagePipeline(kube::KubeClient& client, Caches& caches, kube::EventRecorder& events,
                             registry::RegistryClient& registry,
                             const desired::OperatorSettings& settings, Clock& clock)
    : client_(client),
      caches_(caches),
      events_(events),
      registry_(registry),
      settings_(settings),
      clock_(clock) {}

absl::StatusOr<json> ImagePipeline::SecretData(const std::string& ns, const std::string& name,
                                               std::string_view field) {
  absl::StatusOr<json> secret = client_.Get(kube::resources::kSecrets, ns, name);
  if (!secret.ok()) {
    if (kube::IsApiNotFound(secret.status())) {
      return absl::FailedPreconditionError(
          fmt::format("Secret {}/{} ({}) not found; create it", ns, name, field));
    }
    return Annotate(secret.status(), fmt::format("reading Secret {}/{} ({})", ns, name, field));
  }
  json data = json::object();
  const json& encoded = kube::FieldAt(*secret, {"data"});
  if (encoded.is_object()) {
    for (auto it = encoded.begin(); it != encoded.end(); ++it) {
      std::string decoded;
      if (it->is_string() && absl::Base64Unescape(it->get<std::string>(), &decoded)) {
        data[it.key()] = decoded;
      }
    }
  }
  return data;
}

absl::StatusOr<registry::ImageStatus> ImagePipeline::CheckImage(const api::Module& module,
                                                                const std::string& image,
                                                                const api::TLSOptions& tls) {
  const std::string cache_key =
      fmt::format("{}\n{}\n{}", image, tls.insecure, tls.insecure_skip_tls_verify);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = images_.find(cache_key);
        it != images_.end() && clock_.Now() < it->second.expires) {
      return it->second.status;
    }
  }
  ASSIGN_OR_RETURN(registry::ImageReference reference, registry::ParseImageReference(image));
  std::optional<registry::Credentials> credentials;
  if (module.spec.image_repo_secret && !module.spec.image_repo_secret->name.empty()) {
    const std::string& name = module.spec.image_repo_secret->name;
    ASSIGN_OR_RETURN(json data,
                     SecretData(module.metadata.namespace_name, name, "imageRepoSecret"));
    const std::string source = fmt::format("Secret {}/{}", module.metadata.namespace_name, name);
    if (!data.contains(".dockerconfigjson")) {
      return absl::FailedPreconditionError(fmt::format(
          "{} (imageRepoSecret) has no .dockerconfigjson; create it with `kubectl create secret "
          "docker-registry`",
          source));
    }
    ASSIGN_OR_RETURN(
        registry::DockerConfig config,
        registry::DockerConfig::Parse(data[".dockerconfigjson"].get<std::string>(), source));
    credentials = config.Find(reference.domain, reference.repository);
  }
  registry::Transport transport;
  transport.insecure = tls.insecure;
  transport.skip_tls_verify = tls.insecure_skip_tls_verify;
  ASSIGN_OR_RETURN(registry::ImageStatus status,
                   registry_.Check(reference, credentials, transport, /*with_labels=*/true));
  absl::MutexLock lock(&mu_);
  images_[cache_key] = {status, clock_.Now() + kImageCacheTtl};
  return status;
}

void ImagePipeline::ForgetImage(const std::string& image) {
  absl::MutexLock lock(&mu_);
  for (auto it = images_.begin(); it != images_.end();) {
    it = it->first.starts_with(image + "\n") ? images_.erase(it) : std::next(it);
  }
}

void ImagePipeline::RecordOnce(const json& object, const std::string& job_uid, kube::EventType type,
                               const std::string& reason, const std::string& message) {
  {
    absl::MutexLock lock(&mu_);
    if (reported_.size() > 10000) reported_.clear();  // old Jobs; at worst one event again
    if (!reported_.insert(job_uid + "/" + reason).second) return;
  }
  events_.Record(object, type, reason, message);
}

std::vector<kube::ObjectPtr> ImagePipeline::JobPods(const api::Module& module, const Step& step,
                                                    const json& job) {
  const std::string kernel_hash = desired::ShortHash(
      StringAt(step.job, {"metadata", "annotations", desired::kKernelAnnotation}));
  const std::string uid = StringAt(job, {"metadata", "uid"});
  std::vector<kube::ObjectPtr> pods;
  for (const kube::ObjectPtr& pod :
       caches_.pods.ListOwnedBy(module.metadata.namespace_name, module.metadata.name)) {
    if (StringAt(*pod, {"metadata", "labels", desired::kComponentLabel}) != step.component ||
        StringAt(*pod, {"metadata", "labels", desired::kKernelHashLabel}) != kernel_hash) {
      continue;
    }
    // A pod of an earlier Job of the same name (replaced, its pods not yet collected).
    bool other_job = false;
    for (std::string_view label : {desired::kJobUidLabel, desired::kLegacyJobUidLabel}) {
      const std::string pod_uid = StringAt(*pod, {"metadata", "labels", label});
      if (!uid.empty() && !pod_uid.empty() && pod_uid != uid) other_job = true;
    }
    if (!other_job) pods.push_back(pod);
  }
  return pods;
}

std::string ImagePipeline::FailureMessage(const api::Module& module, const Step& step,
                                          const json& job) {
  for (const kube::ObjectPtr& pod : JobPods(module, step, job)) {
    const json& statuses = kube::FieldAt(*pod, {"status", "containerStatuses"});
    if (!statuses.is_array()) continue;
    for (const json& status : statuses) {
      for (const char* state : {"state", "lastState"}) {
        std::string message = LogTail(StringAt(status, {state, "terminated", "message"}));
        if (!message.empty()) return message;
      }
    }
  }
  return "";
}

// The scheduler finding no node for the pod, or the kubelet failing to pull the builder image
// or to set up the container, hold a Job active without an end: its pods are not failed, so
// the Job never fails. Each may clear by itself (a node joins, the registry comes back), so
// the Job is left to start; its status says why it has not.
std::string ImagePipeline::StartProblem(const api::Module& module, const Step& step,
                                        const json& job) {
  // The scheduler's and the kubelet's messages, inside parentheses, without their full stop.
  auto said = [](const json& object) {
    std::string text(absl::StripAsciiWhitespace(object.value("message", "")));
    while (!text.empty() && text.back() == '.') text.pop_back();
    return text.empty() ? "" : ": " + text;
  };
  const json& containers = kube::FieldAt(step.job, {"spec", "template", "spec", "containers"});
  const std::string image =
      containers.is_array() && !containers.empty() ? containers[0].value("image", "") : "";
  for (const kube::ObjectPtr& pod : JobPods(module, step, job)) {
    if (!kube::FieldAt(*pod, {"metadata", "deletionTimestamp"}).is_null()) continue;
    const std::string name = StringAt(*pod, {"metadata", "name"});
    const json& conditions = kube::FieldAt(*pod, {"status", "conditions"});
    for (const json& condition : conditions.is_array() ? conditions : json::array()) {
      if (condition.value("type", "") == "PodScheduled" &&
          condition.value("status", "") == "False" &&
          condition.value("reason", "") == "Unschedulable") {
        return fmt::format(
            "its pod {} fits no node (Unschedulable{}); check {} and the nodes' labels and "
            "taints (spec.tolerations)",
            name, said(condition), step.selector_field);
      }
    }
    for (const char* field : {"initContainerStatuses", "containerStatuses"}) {
      const json& statuses = kube::FieldAt(*pod, {"status", field});
      for (const json& status : statuses.is_array() ? statuses : json::array()) {
        const json& waiting = kube::FieldAt(status, {"state", "waiting"});
        if (!waiting.is_object()) continue;
        const std::string reason = waiting.value("reason", "");
        if (reason == "ErrImagePull" || reason == "ImagePullBackOff" ||
            reason == "InvalidImageName") {
          return fmt::format(
              "its pod {} cannot pull the builder image {} ({}{}); check {} and that the nodes "
              "can pull from its registry",
              name, image, reason, said(waiting), step.image_fields);
        }
        if (reason == "CreateContainerConfigError") {
          return fmt::format("its pod {} cannot set up its container ({}{}); check {}", name,
                             reason, said(waiting), step.mounts);
        }
      }
    }
  }
  return "";
}

absl::StatusOr<std::optional<ImageReadiness>> ImagePipeline::Advance(
    const api::Module& module, const json& object, const Step& step,
    const registry::ImageStatus& image) {
  const std::string& ns = module.metadata.namespace_name;
  const std::string name = step.job["metadata"]["name"];
  const std::string kernel =
      step.job["metadata"]["annotations"][std::string(desired::kKernelAnnotation)];
  const std::string target =
      step.job["metadata"]["annotations"][std::string(desired::kImageAnnotation)];
  auto not_ready = [&](std::string reason, std::string message, bool in_progress) {
    ImageReadiness readiness;
    readiness.problem = {kernel, target, std::move(reason), std::move(message), in_progress};
    return std::optional<ImageReadiness>(std::move(readiness));
  };
  kube::ObjectPtr job = caches_.jobs.Get(kube::ObjectKey(ns, name));
  if (job != nullptr) {
    const std::string uid = StringAt(*job, {"metadata", "uid"});
    if (!kube::FieldAt(*job, {"metadata", "deletionTimestamp"}).is_null()) {
      return not_ready(step.progress_reason, fmt::format("waiting for the old Job {} to go", name),
                       true);
    }
    if (StringAt(*job, {"metadata", "annotations", desired::kInputsHashAnnotation}) != step.hash) {
      spdlog::info("{} Job {}/{}: its inputs changed; replacing it", step.verb, ns, name);
      kube::DeleteOptions options;
      options.propagation_policy = "Background";  // its pods go too
      options.precondition_uid = uid;
      absl::Status deleted = client_.Delete(kube::resources::kJobs, ns, name, options);
      if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
      return not_ready(step.progress_reason,
                       fmt::format("the inputs changed; replacing Job {}", name), true);
    }
    if (HasCondition(*job, "Complete")) {
      RecordOnce(
          object, uid, kube::EventType::kNormal, step.verb + "Succeeded",
          fmt::format("{} for kernel {} pushed {} (Job {})", step.verb, kernel, target, name));
      return std::nullopt;  // done; the registry was asked again after it finished
    }
    if (HasCondition(*job, "Failed")) {
      std::string tail = FailureMessage(module, step, *job);
      std::string message = fmt::format(
          "Job {} failed{}; it is kept for `kubectl logs job/{}` and retried once the Job "
          "controller removes it, {} s after it ended",
          name, tail.empty() ? "" : ": " + tail, name, settings_.finished_job_ttl_seconds);
      RecordOnce(object, uid, kube::EventType::kWarning, step.verb + "Failed",
                 fmt::format("{} for kernel {} failed (Job {}){}", step.verb, kernel, name,
                             tail.empty() ? "" : ": " + tail));
      return not_ready(step.verb + "Failed", std::move(message), false);
    }
    // Active: its pod is starting or running, or cannot start.
    const std::string stuck = StartProblem(module, step, *job);
    if (!stuck.empty()) {
      return not_ready(step.progress_reason, fmt::format("Job {} cannot start: {}", name, stuck),
                       true);
    }
    return not_ready(step.progress_reason, fmt::format("Job {} is running", name), true);
  }
  const auto label = image.labels.find(step.image_label);
  const bool made = image.exists && ((label != image.labels.end() && label->second == step.hash) ||
                                     !HasKmmLabels(image));
  if (made) return std::nullopt;
  absl::StatusOr<json> created = client_.Create(kube::resources::kJobs, ns, step.job);
  if (!created.ok()) {
    if (kube::IsApiAlreadyExists(created.status())) {  // the cache is behind; wait for it
      return not_ready(step.progress_reason, fmt::format("Job {} is starting", name), true);
    }
    return Annotate(created.status(), fmt::format("creating Job {}/{}", ns, name));
  }
  const std::string why =
      !image.exists ? "the image does not exist" : "the image was made from other inputs";
  spdlog::info("{} Job {}/{} created for kernel {}: {}", step.verb, ns, name, kernel, why);
  RecordOnce(object, StringAt(*created, {"metadata", "uid"}), kube::EventType::kNormal,
             step.verb + "Created",
             fmt::format("{} for kernel {} started (Job {}): {}", step.verb, kernel, name, why));
  return not_ready(step.progress_reason, fmt::format("Job {} created", name), true);
}

absl::StatusOr<ImageReadiness> ImagePipeline::Ensure(const api::Module& module, const json& object,
                                                     const desired::LoaderTarget& target) {
  const api::ResolvedMapping& mapping = target.mapping;
  const std::string& ns = module.metadata.namespace_name;
  ImageReadiness readiness;
  readiness.image = mapping.container_image;
  if (!mapping.build && !mapping.sign) {
    readiness.ready = true;
    return readiness;
  }
  auto problem = [&](std::string reason, std::string message) {
    readiness.problem = {target.kernel, mapping.container_image, std::move(reason),
                         std::move(message), false};
    return readiness;
  };
  const std::string trigger = module.spec.image_rebuild_trigger_generation
                                  ? fmt::format("imageRebuildTriggerGeneration={}",
                                                *module.spec.image_rebuild_trigger_generation)
                                  : "";
  std::vector<Step> steps;
  std::string build_hash;
  if (mapping.build) {
    const std::string& config_map = mapping.build->dockerfile_config_map.name;
    kube::ObjectPtr cached = caches_.configmaps.Get(kube::ObjectKey(ns, config_map));
    if (cached == nullptr) {
      return problem("BuildInputMissing",
                     fmt::format("ConfigMap {}/{} (build.dockerfileConfigMap) not found; create "
                                 "it with the Dockerfile under the key \"dockerfile\"",
                                 ns, config_map));
    }
    desired::BuildContext context;
    for (auto [field, into] :
         {std::pair{"data", &context.data}, std::pair{"binaryData", &context.binary_data}}) {
      const json& hashes = kube::FieldAt(*cached, {field});
      if (!hashes.is_object()) continue;
      for (auto it = hashes.begin(); it != hashes.end(); ++it) (*into)[it.key()] = it->dump();
    }
    context.other_inputs = trigger;
    absl::StatusOr<json> job = desired::BuildJobFor(module, mapping, context, settings_);
    if (!job.ok()) return problem("BuildInputMissing", std::string(job.status().message()));
    build_hash = (*job)["metadata"]["annotations"][std::string(desired::kInputsHashAnnotation)];
    const api::Build& build = *mapping.build;
    std::string selector_field =
        build.selector.empty() ? "spec.selector (build.selector is empty)" : "build.selector";
    std::string image_fields = build.kaniko_params && !build.kaniko_params->tag.empty()
                                   ? "build.kanikoParams.tag, the operator's --builder-image"
                                   : "the operator's --builder-image";
    std::string mounts = fmt::format(
        "the ConfigMap {} (build.dockerfileConfigMap) and the Secrets of build.secrets and "
        "imageRepoSecret",
        config_map);
    steps.push_back({std::string(desired::kBuildComponent), *std::move(job), build_hash,
                     std::string(desired::kBuildHashImageLabel), "Build", "Building",
                     std::move(selector_field), std::move(image_fields), std::move(mounts)});
  }
  if (mapping.sign) {
    // A missing Secret is the Module's problem; any other error is the API's, retried.
    absl::StatusOr<json> key = SecretData(ns, mapping.sign->key_secret.name, "sign.keySecret");
    if (!key.ok() && !absl::IsFailedPrecondition(key.status())) return key.status();
    if (!key.ok()) return problem("SignInputMissing", std::string(key.status().message()));
    absl::StatusOr<json> cert = SecretData(ns, mapping.sign->cert_secret.name, "sign.certSecret");
    if (!cert.ok() && !absl::IsFailedPrecondition(cert.status())) return cert.status();
    if (!cert.ok()) return problem("SignInputMissing", std::string(cert.status().message()));
    if (!key->contains("key") || !cert->contains("cert")) {
      return problem(
          "SignInputMissing",
          fmt::format("the signing key must be under the key \"key\" of Secret {}/{} "
                      "and the certificate under \"cert\" of Secret {}/{}",
                      ns, mapping.sign->key_secret.name, ns, mapping.sign->cert_secret.name));
    }
    const std::string inputs = fmt::format(
        "{}\n{}\n{}", desired::InputsHash(key->value("key", "") + "\n" + cert->value("cert", "")),
        build_hash, trigger);
    json job = desired::SignJobFor(module, mapping, inputs, settings_);
    std::string hash = job["metadata"]["annotations"][std::string(desired::kInputsHashAnnotation)];
    steps.push_back({std::string(desired::kSignComponent), std::move(job), std::move(hash),
                     std::string(desired::kSignHashImageLabel), "Sign", "Signing", "spec.selector",
                     "the operator's --builder-image",
                     "the Secrets of sign.keySecret, sign.certSecret and imageRepoSecret"});
  }
  // A Job that finished since the last look pushed a new image: ask the registry again.
  for (const Step& step : steps) {
    kube::ObjectPtr job =
        caches_.jobs.Get(kube::ObjectKey(ns, step.job["metadata"]["name"].get<std::string>()));
    if (job == nullptr || !HasCondition(*job, "Complete")) continue;
    bool seen;
    {
      absl::MutexLock lock(&mu_);
      seen =
          reported_.contains(StringAt(*job, {"metadata", "uid"}) + "/" + step.verb + "Succeeded");
    }
    if (!seen) ForgetImage(mapping.container_image);
  }
  absl::StatusOr<registry::ImageStatus> image =
      CheckImage(module, mapping.container_image, mapping.registry_tls);
  if (!image.ok()) {
    // The API server failing to give the imageRepoSecret (500, 403) is retried with backoff,
    // as any API error; what the registry says, or a Secret that is not there, is reported.
    if (kube::ApiErrorDetailsOf(image.status())) return image.status();
    return problem("ImageCheckFailed", std::string(image.status().message()));
  }
  for (const Step& step : steps) {
    ASSIGN_OR_RETURN(std::optional<ImageReadiness> waiting, Advance(module, object, step, *image));
    if (waiting) return *std::move(waiting);
  }
  readiness.ready = true;
  readiness.image = Pinned(mapping.container_image, image->digest);
  return readiness;
}

absl::Status ImagePipeline::DeleteJobsExcept(const api::Module& module,
                                             const std::set<std::string>& kernels) {
  for (const kube::ObjectPtr& job :
       caches_.jobs.ListOwnedBy(module.metadata.namespace_name, module.metadata.name)) {
    const std::string kernel =
        StringAt(*job, {"metadata", "annotations", desired::kKernelAnnotation});
    if (kernels.contains(kernel) ||
        !kube::FieldAt(*job, {"metadata", "deletionTimestamp"}).is_null()) {
      continue;
    }
    kube::DeleteOptions options;
    options.propagation_policy = "Background";
    absl::Status deleted = client_.Delete(kube::resources::kJobs, module.metadata.namespace_name,
                                          StringAt(*job, {"metadata", "name"}), options);
    if (!deleted.ok() && !kube::IsApiNotFound(deleted)) return deleted;
  }
  return absl::OkStatus();
}

}  // namespace kmm::controllers
