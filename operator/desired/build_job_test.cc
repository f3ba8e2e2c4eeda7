#include "operator/desired/build_job.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/desired/testing/testdata.h"
#include "operator/kube/yaml.h"

namespace kmm::desired {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::TestdataYaml;

api::Module BuildModule() {
  absl::StatusOr<api::Module> module = api::ParseModule(TestdataYaml("build_module.yaml"));
  EXPECT_TRUE(module.ok()) << module.status();
  return *module;
}

api::ResolvedMapping MappingFor(const api::Module& module, std::string_view kernel) {
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(module, kernel);
  EXPECT_TRUE(mapping.has_value()) << kernel;
  return mapping.value_or(api::ResolvedMapping{});
}

OperatorSettings Settings() {
  OperatorSettings settings;
  settings.builder_image = "registry.example:5000/kmm/kmm-builder:v0.1.0";
  settings.signer_image = "registry.example:5000/kmm/kmm-signer:v0.1.0";
  settings.builder_args = {"--snapshot-mode=redo"};
  return settings;
}

BuildContext Context() {
  return {.data = {{"dockerfile", "FROM scratch\n"}, {"kmm_ci_a.c", "/* source */\n"}},
          .binary_data = {{"firmware.bin", "AAEC"}},
          .other_inputs = ""};
}

// Compares whole objects; on a difference prints the built one and an RFC 6902 diff.
void ExpectGolden(const json& built, const std::string& golden) {
  json expected = TestdataYaml(golden);
  EXPECT_EQ(built, expected) << golden << " built:\n"
                             << kube::ToYaml(built) << "\ndiff (expected -> built):\n"
                             << json::diff(expected, built).dump(2);
}

TEST(BuildJobTest, EveryBuildFieldIsExactlyTheExpectedJob) {
  const api::Module module = BuildModule();
  absl::StatusOr<json> job =
      BuildJobFor(module, MappingFor(module, "6.1.0-57-amd64"), Context(), Settings());
  ASSERT_TRUE(job.ok()) << job.status();
  ExpectGolden(*job, "build_job.yaml");
}

TEST(BuildJobTest, TheContainersDefaultsAloneAreExactlyTheExpectedJob) {
  api::Module module = BuildModule();
  module.spec.image_repo_secret.reset();
  module.spec.tolerations.clear();
  api::Build minimal;
  minimal.dockerfile_config_map.name = "kmm-ci-a-build";
  module.spec.module_loader->container.build = minimal;
  absl::StatusOr<json> job = BuildJobFor(
      module, MappingFor(module, "6.1.0-59-cloud-amd64"),
      {.data = {{"dockerfile", "FROM scratch\n"}}, .binary_data = {}, .other_inputs = ""},
      OperatorSettings{});
  ASSERT_TRUE(job.ok()) << job.status();
  ExpectGolden(*job, "build_job_defaults.yaml");
}

TEST(BuildJobTest, SignOnlyIsExactlyTheExpectedJob) {
  api::Module module = BuildModule();
  module.spec.module_loader->container.build.reset();
  module.spec.module_loader->container.sign.reset();
  ExpectGolden(SignJobFor(module, MappingFor(module, "6.1.0-58-amd64"), "keys-v1", Settings()),
               "sign_job.yaml");
}

TEST(BuildJobTest, SignAfterBuildSignsWhatTheBuildPushed) {
  const api::Module module = BuildModule();
  api::ResolvedMapping mapping = MappingFor(module, "6.1.0-59-cloud-amd64");
  EXPECT_EQ(UnsignedImageFor(mapping), "registry.example:5000/kmm/kmm-ci-a:6.1.0-59-cloud-amd64");
  EXPECT_EQ(SignDockerfile(module, mapping, Settings()),
            "FROM registry.example:5000/kmm/kmm-ci-a:6.1.0-59-cloud-amd64 AS source\n"
            "FROM registry.example:5000/kmm/kmm-signer:v0.1.0 AS signimage\n"
            "COPY --from=source /opt /opt/opt\n"
            "RUN for file in /opt/opt/lib/modules/6.1.0-59-cloud-amd64/kmm_ci_a.ko; do \\\n"
            "      [ -e \"$file\" ] || { echo \"kmm: ${file#/opt} (filesToSign) is not in the "
            "unsigned image\" >&2; exit 1; }; \\\n"
            "      /usr/local/bin/sign-file sha256 /run/secrets/key/key.pem "
            "/run/secrets/cert/cert.pem \"$file\" || exit 1; \\\n"
            "    done\n"
            "FROM source\n"
            "COPY --from=signimage /opt/opt /opt\n");
}

TEST(BuildJobTest, InputsHashFollowsEveryInputAndNothingElse) {
  const api::Module module = BuildModule();
  auto hash = [&](const api::Module& m, const BuildContext& context,
                  const OperatorSettings& settings) {
    absl::StatusOr<json> job = BuildJobFor(m, MappingFor(m, "6.1.0-57-amd64"), context, settings);
    EXPECT_TRUE(job.ok()) << job.status();
    return (*job)["metadata"]["annotations"][std::string(kInputsHashAnnotation)].get<std::string>();
  };
  const std::string base = hash(module, Context(), Settings());
  EXPECT_EQ(base, hash(module, Context(), Settings())) << "stable";
  EXPECT_EQ(base.size(), 16u);

  BuildContext dockerfile = Context();
  dockerfile.data["dockerfile"] = "FROM scratch\nRUN true\n";
  EXPECT_NE(base, hash(module, dockerfile, Settings())) << "the Dockerfile";
  BuildContext source = Context();
  source.data["kmm_ci_a.c"] = "/* changed */\n";
  EXPECT_NE(base, hash(module, source, Settings())) << "another file of the context";
  BuildContext binary = Context();
  binary.binary_data["firmware.bin"] = "AAED";
  EXPECT_NE(base, hash(module, binary, Settings())) << "binaryData";
  OperatorSettings builder = Settings();
  builder.builder_image = "registry.example:5000/other/kmm-builder:v0.1.0";
  EXPECT_NE(base, hash(module, Context(), builder)) << "the builder";

  api::Module args = module;
  args.spec.module_loader->container.kernel_mappings[0].build->build_args[1].value = "c d";
  EXPECT_NE(hash(args, Context(), Settings()), base) << "a build arg";
  api::Module tolerations = module;
  tolerations.spec.tolerations.clear();
  EXPECT_NE(hash(tolerations, Context(), Settings()), base) << "where it runs";
  // What does not reach the build: the loader's own settings, the Module's other fields.
  OperatorSettings loader = Settings();
  loader.loader_image = "registry.example:5000/kmm/kmm-loader:v9";
  loader.finished_job_ttl_seconds = 60;
  EXPECT_EQ(hash(module, Context(), loader), base);
  api::Module parameters = module;
  parameters.spec.module_loader->container.modprobe.parameters = {"devices=4"};
  EXPECT_EQ(hash(parameters, Context(), Settings()), base);
}

TEST(BuildJobTest, AConfigMapWithoutADockerfileIsRefusedByName) {
  const api::Module module = BuildModule();
  absl::StatusOr<json> job =
      BuildJobFor(module, MappingFor(module, "6.1.0-57-amd64"),
                  {.data = {{"Dockerfile", "FROM scratch"}}, .binary_data = {}, .other_inputs = ""},
                  Settings());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      std::string(job.status().message()),
      "ConfigMap kmm-build/kmm-ci-a-build-57 (build.dockerfileConfigMap) has no \"dockerfile\" "
      "key; put the Dockerfile there");
}

TEST(BuildJobTest, KanikoParamsTagReplacesTheBuilderTagOrDigest) {
  const api::Module module = BuildModule();
  const api::ResolvedMapping mapping = MappingFor(module, "6.1.0-57-amd64");
  for (const auto& [builder, expected] : std::vector<std::pair<std::string, std::string>>{
           {"registry.example:5000/kaniko/executor:v1.23.2",
            "registry.example:5000/kaniko/executor:v1.23.2-debug"},
           {"registry.example:5000/kaniko/executor",
            "registry.example:5000/kaniko/executor:v1.23.2-debug"},
           {"gcr.io/kaniko-project/executor@sha256:abc",
            "gcr.io/kaniko-project/executor:v1.23.2-debug"},
       }) {
    OperatorSettings settings;
    settings.builder_image = builder;
    absl::StatusOr<json> job = BuildJobFor(module, mapping, Context(), settings);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ((*job)["spec"]["template"]["spec"]["containers"][0]["image"], expected) << builder;
  }
}

}  // namespace
}  // namespace kmm::desired
