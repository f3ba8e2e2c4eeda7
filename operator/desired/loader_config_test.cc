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
#include "loader/modprobe_command.h"
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
  for (const char* platform : {"eks-amazonlinux", "eks-ubuntu", "gke-ubuntu", "gke-cos",
                               "aks-ubuntu", "ubuntu-bare-metal"}) {
    const std::string path = std::string("manifests/examples/") + platform + "/module.yaml";
    sources.push_back({path, ReadFile(root + "/" + path)});
  }
  sources.push_back({"test/node/sample-module", SampleModule()});
  return sources;
}

// Kernels to try: the mappings' literals and kernels their regexps are written for.
std::vector<std::string> KernelsFor(const api::Module& module) {
  std::vector<std::string> kernels = {"5.15.0-43-generic", "5.4.196-108.356.amzn2.x86_64",
                                      "5.4.0-1089-azure",  "6.1.0-56-amd64",
                                      "6.8.0-1015-aws",    "5.15.0-1040-aws",
                                      "5.4.0-1049-gke",    "5.10.109+"};
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

api::Module TestModule() {
  const std::string path = std::string(KMM_SOURCE_DIR) + "/operator/desired/testdata/module.yaml";
  absl::StatusOr<json> object = kube::ParseYaml(ReadFile(path), path);
  EXPECT_TRUE(object.ok()) << object.status();
  absl::StatusOr<api::Module> module = api::ParseModule(object.ok() ? *object : json());
  EXPECT_TRUE(module.ok()) << module.status();
  return module.ok() ? *module : api::Module{};
}

struct DirNameCase {
  std::vector<std::string> words;
  std::vector<std::string> in_pod;  // what the loader must get
};

// Every spelling of modprobe's -d that the loader reads (loader/modprobe_command.h).
const std::vector<DirNameCase>& DirNameCases() {
  static const auto* cases = new std::vector<DirNameCase>{
      {{"-d", "/opt"}, {"-d", "/kmm-modules/opt"}},
      {{"--dirname", "/opt"}, {"--dirname", "/kmm-modules/opt"}},
      {{"--dirname=/opt"}, {"--dirname=/kmm-modules/opt"}},
      {{"-d/opt"}, {"-d/kmm-modules/opt"}},
      {{"-vd", "/opt/mods"}, {"-vd", "/kmm-modules/opt/mods"}},
      {{"-vd/opt"}, {"-vd/kmm-modules/opt"}},
      {{"-v", "-d", "/opt", "kmm_ci_a", "x=1"},
       {"-v", "-d", "/kmm-modules/opt", "kmm_ci_a", "x=1"}},
  };
  return *cases;
}

TEST(LoaderConfigForTest, DirNameFlagsInArgsPointIntoThePodsCopy) {
  const api::Module base = TestModule();
  std::optional<api::ResolvedMapping> mapping = api::FindKernelMapping(base, "5.15.0-43-generic");
  ASSERT_TRUE(mapping.has_value());
  for (const DirNameCase& c : DirNameCases()) {
    SCOPED_TRACE(::testing::PrintToString(c.words));
    api::Module module = base;
    api::ModprobeSpec& modprobe = module.spec.module_loader->container.modprobe;
    modprobe.args = api::ModprobeArgs{c.words, c.words};
    modprobe.raw_args = api::ModprobeArgs{c.words, c.words};
    const loader::LoaderConfig config = LoaderConfigFor(module, *mapping, "5.15.0-43-generic", {});
    for (const loader::ModprobeArgs& args : {*config.args, *config.raw_args}) {
      EXPECT_EQ(args.load, c.in_pod);
      EXPECT_EQ(args.unload, c.in_pod);
      // And the loader reads the directory of the copy from it.
      absl::StatusOr<loader::ModprobeCommand> command =
          loader::ParseModprobeCommand(args.load, "args.load");
      ASSERT_TRUE(command.ok()) << command.status();
      EXPECT_TRUE(command->dir_name.value_or("").starts_with("/kmm-modules/opt"));
    }
  }
}

TEST(LoaderConfigForTest, OnlyDirNameValuesAreRemapped) {
  auto into_copy = [](std::string_view dir) { return "/kmm-modules" + std::string(dir); };
  using Words = std::vector<std::string>;
  // -S takes a value too; a word that is not a flag's value is left alone.
  EXPECT_EQ(loader::MapModprobeDirNames({"-S", "/opt", "/opt"}, into_copy),
            (Words{"-S", "/opt", "/opt"}));
  EXPECT_EQ(loader::MapModprobeDirNames({"--set-version", "-d", "/opt"}, into_copy),
            (Words{"--set-version", "-d", "/opt"}));
  EXPECT_EQ(loader::MapModprobeDirNames({"-vS6.1", "-d", "/opt"}, into_copy),
            (Words{"-vS6.1", "-d", "/kmm-modules/opt"}));
  // Nothing to remap: a -d without its value, flags the loader refuses (it says so itself).
  EXPECT_EQ(loader::MapModprobeDirNames({"-d"}, into_copy), (Words{"-d"}));
  EXPECT_EQ(loader::MapModprobeDirNames({"-xd", "/opt"}, into_copy), (Words{"-xd", "/opt"}));
  EXPECT_EQ(loader::MapModprobeDirNames({"--dirnames=/opt"}, into_copy),
            (Words{"--dirnames=/opt"}));
}

}  // namespace
}  // namespace kmm::desired
