// The operator's side of the loader-config contract (loader/config.h): what LoaderConfigFor
// builds for the repository's Modules, written as the DaemonSet carries it, is what
// kmm-loader parses back.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "loader/config.h"
#include "operator/api/kernel_mapping.h"
#include "operator/desired/loader_daemonset.h"
#include "operator/kube/yaml.h"

namespace kmm::desired {
namespace {

using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The Module test/node/sample-module prints (a script, so the suites can name the kernel).
std::string SampleModule() {
  const std::string command = std::string("bash ") + KMM_SOURCE_DIR +
                              "/test/node/sample-module kmm-ci sample 6.1.0-56-amd64 "
                              "registry.example/kmm";
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  EXPECT_EQ(pclose(pipe), 0) << command;
  return out;
}

struct ModuleSource {
  std::string name;
  std::string text;  // YAML or JSON
};

// Every Module in the repository's test data.
std::vector<ModuleSource> RepositoryModules() {
  const std::string root = KMM_SOURCE_DIR;
  std::vector<ModuleSource> sources;
  for (const char* path :
       {"operator/api/testdata/full_module.json", "operator/api/testdata/dra_module.json",
        "operator/desired/testdata/module.yaml",
        "manifests/crd/testdata/builtin_device_plugin_module.json",
        "manifests/crd/testdata/rarely_used_fields_module.json"}) {
    sources.push_back({path, ReadFile(root + "/" + path)});
  }
  sources.push_back({"test/node/sample-module", SampleModule()});
  return sources;
}

// Kernels to try: the mappings' literals and kernels their regexps are written for.
std::vector<std::string> KernelsFor(const api::Module& module) {
  std::vector<std::string> kernels = {"5.15.0-43-generic", "5.4.196-108.356.amzn2.x86_64",
                                      "5.4.0-1089-azure", "6.1.0-56-amd64", "6.8.0-1015-aws"};
  for (const api::KernelMapping& mapping : module.spec.module_loader->container.kernel_mappings) {
    if (!mapping.literal.empty()) kernels.push_back(mapping.literal);
  }
  return kernels;
}

TEST(LoaderConfigContractTest, EveryRepositoryModuleGivesAConfigTheLoaderReadsBack) {
  for (const ModuleSource& source : RepositoryModules()) {
    SCOPED_TRACE(source.name);
    absl::StatusOr<json> object = kube::ParseYaml(source.text, source.name);
    ASSERT_TRUE(object.ok()) << object.status();
    absl::StatusOr<api::Module> module = api::ParseModule(*object);
    ASSERT_TRUE(module.ok()) << module.status();
    ASSERT_TRUE(module->spec.module_loader.has_value());
    int resolved = 0;
    for (const std::string& kernel : KernelsFor(*module)) {
      std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(*module, kernel);
      if (!mapping) continue;
      ++resolved;
      SCOPED_TRACE(kernel);
      const loader::LoaderConfig built = LoaderConfigFor(*module, *mapping, kernel, {});
      const std::string text = loader::SerializeLoaderConfig(built).dump();
      absl::StatusOr<loader::LoaderConfig> parsed = loader::ParseLoaderConfig(text, source.name);
      ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
      EXPECT_EQ(*parsed, built) << text;
      // And what matters, named: the loader reads the kernel, the copy and the module.
      const api::ModprobeSpec& modprobe = module->spec.module_loader->container.modprobe;
      EXPECT_EQ(parsed->kernel_version, kernel);
      EXPECT_EQ(parsed->dir_name, "/kmm-modules" + modprobe.dir_name);
      EXPECT_EQ(parsed->module_name, modprobe.module_name);
      EXPECT_EQ(parsed->parameters, modprobe.parameters);
      EXPECT_EQ(parsed->in_tree_modules_to_remove, mapping->in_tree_modules_to_remove);
      EXPECT_EQ(parsed->device_plugin.has_value(), UsesBuiltinDevicePlugin(*module));
    }
    EXPECT_GT(resolved, 0) << "no kernel to try maps to an image; add one to KernelsFor";
  }
}

TEST(LoaderConfigContractTest, TheDaemonSetCarriesTheSerializedConfig) {
  const std::string path = std::string(KMM_SOURCE_DIR) + "/operator/desired/testdata/module.yaml";
  absl::StatusOr<json> object = kube::ParseYaml(ReadFile(path), path);
  ASSERT_TRUE(object.ok()) << object.status();
  absl::StatusOr<api::Module> module = api::ParseModule(*object);
  ASSERT_TRUE(module.ok()) << module.status();
  const std::string kernel = "5.15.0-43-generic";
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(*module, kernel);
  ASSERT_TRUE(mapping.has_value());
  const json daemonset = LoaderDaemonSetFor(*module, *mapping, kernel, {});
  const json& env = daemonset["spec"]["template"]["spec"]["containers"][0]["env"][0];
  ASSERT_EQ(env["name"], "KMM_LOADER_CONFIG");
  absl::StatusOr<loader::LoaderConfig> parsed =
      loader::ParseLoaderConfig(env["value"].get<std::string>(), "KMM_LOADER_CONFIG");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, LoaderConfigFor(*module, *mapping, kernel, {}));
}

}  // namespace
}  // namespace kmm::desired
