#include "operator/desired/build_job.h"

#include <string>
#include <vector>

#include "fmt/format.h"
#include "operator/desired/labels.h"
#include "operator/desired/loader_daemonset.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

// Upstream's mount points, which Dockerfiles written for upstream may rely on.
constexpr std::string_view kDockerConfigDir = "/kaniko/.docker";
constexpr std::string_view kHostLibModules = "/host/lib/modules";
constexpr std::string_view kSecretsDir = "/run/secrets";
constexpr std::string_view kSignKeyDir = "/run/secrets/key";
constexpr std::string_view kSignCertDir = "/run/secrets/cert";
// Where the signer image keeps the kernel's sign-file.
constexpr std::string_view kSignFile = "/usr/local/bin/sign-file";
// On the sign Job's pod: the generated Dockerfile, which a downward-API volume turns into
// /workspace/Dockerfile (no ConfigMap to create and clean up).
constexpr std::string_view kSignDockerfileAnnotation = "kmm.sigs.x-k8s.io/sign-dockerfile";
// A build or sign that fails this many times (each pod retried by the Job controller with
// its exponential backoff) is reported failed.
constexpr int kBackoffLimit = 3;

json Labels(const api::Module& module, std::string_view component, std::string_view kernel) {
  return {{kModuleNameLabel, module.metadata.name},
          {kComponentLabel, component},
          {kKernelHashLabel, ShortHash(kernel)},
          {kManagedByLabel, kManagedByValue}};
}

json SecretVolume(std::string_view volume, std::string_view secret, json items = nullptr) {
  json source = {{"secretName", secret}};
  if (!items.is_null()) source["items"] = std::move(items);
  return {{"name", volume}, {"secret", source}};
}

json Mount(std::string_view volume, std::string_view path) {
  return {{"name", volume}, {"mountPath", path}, {"readOnly", true}};
}

// The TLS flags of the builder (kaniko's names): for the registry it pushes to and the one
// it pulls the base or unsigned image from.
void AddTlsArgs(json& args, const api::TLSOptions& push,
                const std::optional<api::TLSOptions>& pull) {
  if (push.insecure) args.push_back("--insecure");
  if (push.insecure_skip_tls_verify) args.push_back("--skip-tls-verify");
  if (pull && pull->insecure) args.push_back("--insecure-pull");
  if (pull && pull->insecure_skip_tls_verify) args.push_back("--skip-tls-verify-pull");
}

// kanikoParams.tag picks another tag of the builder image (upstream's meaning).
std::string BuilderImage(const OperatorSettings& settings, const api::Build* build) {
  std::string image = settings.builder_image;
  if (build == nullptr || !build->kaniko_params || build->kaniko_params->tag.empty()) return image;
  size_t digest = image.find('@');
  if (digest != std::string::npos) image.resize(digest);
  size_t slash = image.rfind('/');
  size_t colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    image.resize(colon);
  }
  return image + ":" + build->kaniko_params->tag;
}

// Adds imageRepoSecret as the builder's registry credentials (push and pull).
void AddDockerConfig(const api::Module& module, json& volumes, json& mounts) {
  if (!module.spec.image_repo_secret || module.spec.image_repo_secret->name.empty()) return;
  volumes.push_back(SecretVolume("docker-config", module.spec.image_repo_secret->name,
                                 {{{"key", ".dockerconfigjson"}, {"path", "config.json"}}}));
  mounts.push_back(Mount("docker-config", kDockerConfigDir));
}

json JobObject(const api::Module& module, std::string_view name, std::string_view component,
               std::string_view image_label, const api::ResolvedMapping& mapping,
               std::string_view image, json pod_spec, json pod_annotations,
               std::string_view hash_extra, const OperatorSettings& settings) {
  const json labels = Labels(module, component, mapping.kernel_version);
  json pod_metadata = {{"labels", labels}};
  if (!pod_annotations.empty()) pod_metadata["annotations"] = std::move(pod_annotations);
  json pod_template = {{"metadata", pod_metadata}, {"spec", std::move(pod_spec)}};
  const std::string hash = InputsHash(pod_template.dump() + "\n" + std::string(hash_extra));
  // Added after hashing: the label carries the hash of everything else.
  pod_template["spec"]["containers"][0]["args"].push_back(
      fmt::format("--label={}={}", image_label, hash));
  return {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata",
       {{"name", name},
        {"namespace", module.metadata.namespace_name},
        {"labels", labels},
        {"annotations",
         {{kInputsHashAnnotation, hash},
          {kKernelAnnotation, mapping.kernel_version},
          {kImageAnnotation, image}}},
        {"ownerReferences", {OwnerReferenceTo(module)}}}},
      {"spec",
       {{"backoffLimit", kBackoffLimit},
        {"ttlSecondsAfterFinished", settings.finished_job_ttl_seconds},
        {"template", std::move(pod_template)}}},
  };
}

json BuildPodSpec(const api::Module& module, const api::StringMap& selector, json container,
                  json volumes) {
  json node_selector = json::object();
  for (const auto& [key, value] : selector) node_selector[key] = value;
  json spec = {{"restartPolicy", "Never"},
               {"nodeSelector", node_selector},
               {"containers", {std::move(container)}},
               {"volumes", std::move(volumes)}};
  if (!module.spec.tolerations.empty()) spec["tolerations"] = module.spec.tolerations;
  return spec;
}

}  // namespace

std::string BuildJobName(std::string_view module_name, std::string_view kernel) {
  return fmt::format("{}-build-{}", module_name, ShortHash(kernel));
}

std::string SignJobName(std::string_view module_name, std::string_view kernel) {
  return fmt::format("{}-sign-{}", module_name, ShortHash(kernel));
}

absl::StatusOr<json> BuildJobFor(const api::Module& module, const api::ResolvedMapping& mapping,
                                 const BuildContext& context, const OperatorSettings& settings) {
  const api::Build& build = *mapping.build;
  const std::string& config_map = build.dockerfile_config_map.name;
  if (!context.data.contains(std::string(kDockerfileKey))) {
    return absl::FailedPreconditionError(fmt::format(
        "ConfigMap {}/{} (build.dockerfileConfigMap) has no \"{}\" key; put the Dockerfile there",
        module.metadata.namespace_name, config_map, kDockerfileKey));
  }
  // The Dockerfile as "Dockerfile", every other key as a file of that name, each its own
  // subPath mount: a whole ConfigMap volume holds symlinks into "..data", which a COPY
  // copies as dangling links.
  json context_mounts = json::array();
  for (const auto* keys : {&context.data, &context.binary_data}) {
    for (const auto& [key, value] : *keys) {
      context_mounts.push_back(
          {{"name", "build-context"},
           {"mountPath",
            fmt::format("{}/{}", kWorkspace, key == kDockerfileKey ? "Dockerfile" : key)},
           {"subPath", key},
           {"readOnly", true}});
    }
  }
  json args = {fmt::format("--dockerfile={}/Dockerfile", kWorkspace),
               fmt::format("--context=dir://{}", kWorkspace),
               fmt::format("--destination={}", mapping.container_image)};
  AddTlsArgs(args, mapping.registry_tls, build.base_image_registry_tls);
  for (const api::BuildArg& arg : api::BuildArgsForKernel(build, mapping)) {
    args.push_back(fmt::format("--build-arg={}={}", arg.name, arg.value));
  }
  for (const std::string& extra : settings.builder_args) args.push_back(extra);

  json volumes = {{{"name", "build-context"}, {"configMap", {{"name", config_map}}}},
                  {{"name", "host-lib-modules"},
                   {"hostPath", {{"path", "/lib/modules"}, {"type", "Directory"}}}}};
  json mounts = context_mounts;
  mounts.push_back(Mount("host-lib-modules", kHostLibModules));
  for (const api::LocalObjectReference& secret : build.secrets) {
    volumes.push_back(SecretVolume("secret-" + secret.name, secret.name));
    mounts.push_back(
        Mount("secret-" + secret.name, fmt::format("{}/{}", kSecretsDir, secret.name)));
  }
  AddDockerConfig(module, volumes, mounts);
  json container = {{"name", "build"},
                    {"image", BuilderImage(settings, &build)},
                    {"args", args},
                    {"terminationMessagePolicy", "FallbackToLogsOnError"},
                    {"volumeMounts", mounts}};
  const api::StringMap& selector = build.selector.empty() ? module.spec.selector : build.selector;
  json pod_spec = BuildPodSpec(module, selector, std::move(container), std::move(volumes));
  // What the template only names: the build context's contents.
  json contents = {{"data", context.data}, {"binaryData", context.binary_data}};
  if (!context.other_inputs.empty()) contents["other"] = context.other_inputs;
  return JobObject(module, BuildJobName(module.metadata.name, mapping.kernel_version),
                   kBuildComponent, kBuildHashImageLabel, mapping, mapping.container_image,
                   std::move(pod_spec), json::object(), contents.dump(), settings);
}

std::string UnsignedImageFor(const api::ResolvedMapping& mapping) {
  if (mapping.build) return mapping.container_image;
  return mapping.sign ? mapping.sign->unsigned_image : "";
}

std::string SignDockerfile(const api::Module& module, const api::ResolvedMapping& mapping,
                           const OperatorSettings& settings) {
  const std::string& dir = module.spec.module_loader->container.modprobe.dir_name;
  std::string dockerfile = fmt::format(
      "FROM {} AS source\n"
      "FROM {} AS signimage\n"
      "COPY --from=source {} /opt{}\n",
      UnsignedImageFor(mapping), settings.signer_image, dir, dir);
  for (const std::string& file : mapping.sign->files_to_sign) {
    dockerfile += fmt::format(
        "RUN for file in /opt{}; do \\\n"
        // The message names the file as filesToSign does, without the staging /opt.
        "      [ -e \"$file\" ] || {{ echo \"kmm: ${{file#/opt}} (filesToSign) is not in the "
        "unsigned image\" >&2; exit 1; }}; \\\n"
        "      {} sha256 {}/key.pem {}/cert.pem \"$file\" || exit 1; \\\n"
        "    done\n",
        file, kSignFile, kSignKeyDir, kSignCertDir);
  }
  dockerfile += fmt::format(
      "FROM source\n"
      "COPY --from=signimage /opt{} {}\n",
      dir, dir);
  return dockerfile;
}

json SignJobFor(const api::Module& module, const api::ResolvedMapping& mapping,
                std::string_view inputs, const OperatorSettings& settings) {
  const api::Sign& sign = *mapping.sign;
  json args = {fmt::format("--dockerfile={}/Dockerfile", kWorkspace),
               fmt::format("--context=dir://{}", kWorkspace),
               fmt::format("--destination={}", mapping.container_image)};
  AddTlsArgs(args, mapping.registry_tls, sign.unsigned_image_registry_tls);
  for (const std::string& extra : settings.builder_args) args.push_back(extra);
  json volumes = {
      {{"name", "build-context"},
       {"downwardAPI",
        {{"items",
          {{{"path", "Dockerfile"},
            {"fieldRef",
             {{"fieldPath",
               fmt::format("metadata.annotations['{}']", kSignDockerfileAnnotation)}}}}}}}}},
      SecretVolume("signing-key", sign.key_secret.name, {{{"key", "key"}, {"path", "key.pem"}}}),
      SecretVolume("signing-cert", sign.cert_secret.name,
                   {{{"key", "cert"}, {"path", "cert.pem"}}}),
  };
  json mounts = {Mount("build-context", kWorkspace), Mount("signing-key", kSignKeyDir),
                 Mount("signing-cert", kSignCertDir)};
  AddDockerConfig(module, volumes, mounts);
  // Upstream signs with the default builder image; kanikoParams is the build's.
  json container = {{"name", "sign"},
                    {"image", BuilderImage(settings, nullptr)},
                    {"args", args},
                    {"terminationMessagePolicy", "FallbackToLogsOnError"},
                    {"volumeMounts", mounts}};
  json pod_spec =
      BuildPodSpec(module, module.spec.selector, std::move(container), std::move(volumes));
  json annotations = {{kSignDockerfileAnnotation, SignDockerfile(module, mapping, settings)}};
  return JobObject(module, SignJobName(module.metadata.name, mapping.kernel_version),
                   kSignComponent, kSignHashImageLabel, mapping, mapping.container_image,
                   std::move(pod_spec), std::move(annotations), inputs, settings);
}

}  // namespace kmm::desired
