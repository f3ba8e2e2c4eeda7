// Loader behaviour over a narrow fake of the kernel (FakeKmod) and a fake clock. The real
// libkmod and kernel are exercised by kmod_tree_test (resolution) and the qemu e2e suite.
#include "loader/loader.h"

#include <elf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <set>

#include "common/status.h"
#include "common/testing/temp_dir.h"

namespace kmm::loader {
namespace {

constexpr char kKernel[] = "6.1.0-56-amd64";

// A pretend kernel: modules a tree offers, what is loaded, and injected failures.
struct FakeKmod {
  struct Module {
    std::vector<std::string> depends;
    std::string vermagic = kKernel;
    bool from_host = false;
    std::string build_id = "";  // hex, as FileIdentity reports it
    std::string srcversion = "";
  };
  std::map<std::string, Module> tree;
  std::set<std::string> loaded;
  std::map<std::string, int> busy_removals;  // name -> how many removals fail with EBUSY
  std::map<std::string, int> insert_errno;
  std::map<std::string, int> users;
  std::vector<std::string> calls;  // "insert a [opts]", "remove a"
  std::vector<std::string> roots;  // image roots the loader asked backends for
};

class FakeBackend final : public KmodBackend {
 public:
  explicit FakeBackend(FakeKmod& kernel) : k_(kernel) {}

  absl::StatusOr<std::vector<ModuleFile>> Resolve(std::string_view name) override {
    std::vector<ModuleFile> out;
    RETURN_IF_ERROR(Add(NormalizeModuleName(name), out));
    return out;
  }
  absl::Status Insert(const ModuleFile& module, std::string_view options) override {
    k_.calls.push_back(fmt::format("insert {} [{}]", module.name, options));
    if (auto it = k_.insert_errno.find(module.name); it != k_.insert_errno.end()) {
      return ErrnoError(it->second, "insert " + module.name);
    }
    if (!k_.loaded.insert(module.name).second) return ErrnoError(EEXIST, "insert");
    return absl::OkStatus();
  }
  absl::Status Remove(std::string_view name) override {
    const std::string module(name);
    k_.calls.push_back("remove " + module);
    if (k_.busy_removals[module] > 0) {
      --k_.busy_removals[module];
      return ErrnoError(EBUSY, "remove " + module);
    }
    if (k_.loaded.erase(module) == 0) return ErrnoError(ENOENT, "remove " + module);
    return absl::OkStatus();
  }
  ModuleState State(std::string_view name) override {
    return k_.loaded.contains(NormalizeModuleName(name)) ? ModuleState::kLive
                                                         : ModuleState::kNotLoaded;
  }
  std::vector<std::string> LoadedDependencies(std::string_view name) override {
    std::vector<std::string> out;
    auto it = k_.tree.find(std::string(name));
    if (it == k_.tree.end()) return out;
    for (const std::string& dep : it->second.depends) {
      if (k_.loaded.contains(dep)) out.push_back(dep);
    }
    return out;
  }
  int Users(std::string_view name) override { return k_.users[std::string(name)] + Holders(name); }
  ModuleIdentity FileIdentity(const ModuleFile& file) override {
    const FakeKmod::Module& module = k_.tree.at(file.name);
    return {module.build_id, module.srcversion};
  }
  int Holders(std::string_view name) override {
    int count = 0;
    for (const auto& [other, module] : k_.tree) {
      if (!k_.loaded.contains(other)) continue;
      for (const std::string& dep : module.depends) count += dep == name ? 1 : 0;
    }
    return count;
  }

 private:
  absl::Status Add(const std::string& name, std::vector<ModuleFile>& out) {
    auto it = k_.tree.find(name);
    if (it == k_.tree.end()) return absl::NotFoundError("module " + name + " not found");
    for (const std::string& dep : it->second.depends) RETURN_IF_ERROR(Add(dep, out));
    for (const ModuleFile& file : out) {
      if (file.name == name) return absl::OkStatus();
    }
    out.push_back({name, "/opt/lib/modules/" + std::string(kKernel) + "/" + name + ".ko",
                   it->second.vermagic, it->second.from_host, it->second.srcversion});
    return absl::OkStatus();
  }
  FakeKmod& k_;
};

class LoaderTest : public ::testing::Test {
 protected:
  LoaderTest() {
    kernel_.tree["kmm_ci_a"] = {};
    kernel_.tree["kmm_ci_b"] = {{"kmm_ci_a"}};
    kernel_.tree["dummy"] = {{}, kKernel, true};
  }

  std::unique_ptr<Loader> MakeLoader(const std::string& json,
                                     const std::string& running = kKernel) {
    absl::StatusOr<LoaderConfig> config = ParseLoaderConfig(json, "test");
    EXPECT_TRUE(config.ok()) << config.status();
    LoaderOptions options;
    options.proc_root = dir_.Join("proc");
    options.sys_root = dir_.Join("sys");
    options.unload_timeout = absl::Seconds(60);
    options.read_private_securityfs = [this]() -> absl::StatusOr<std::string> {
      if (private_lockdown_.empty()) return ErrnoError(EPERM, "mount securityfs");
      return private_lockdown_;
    };
    auto factory = [this](const std::string& root, const std::string&,
                          const std::string&) -> absl::StatusOr<std::unique_ptr<KmodBackend>> {
      kernel_.roots.push_back(root);
      return std::make_unique<FakeBackend>(kernel_);
    };
    return std::make_unique<Loader>(*config, running, options, factory, clock_);
  }

  // What the kernel shows in sysfs for a loaded build of `name`: its build-id note (from
  // two hex digits) and srcversion.
  void LoadedBuild(const std::string& name, const std::string& build_id_hex,
                   const std::string& srcversion = "") {
    kernel_.loaded.insert(name);
    const std::string desc(1, static_cast<char>(std::stoi(build_id_hex, nullptr, 16)));
    Elf64_Nhdr header{4, 1, NT_GNU_BUILD_ID};
    std::string note(reinterpret_cast<const char*>(&header), sizeof(header));
    note += std::string("GNU\0", 4) + desc + std::string(3, '\0');
    dir_.WriteFile("sys/module/" + name + "/notes/.note.gnu.build-id", note);
    if (!srcversion.empty()) dir_.WriteFile("sys/module/" + name + "/srcversion", srcversion);
  }

  FakeKmod kernel_;
  FakeClock clock_;
  testing::TempDir dir_;
  std::string private_lockdown_;  // what a privately mounted securityfs would show
};

TEST_F(LoaderTest, LoadsDependenciesBeforeTheModuleWithItsParameters) {
  auto loader = MakeLoader(R"({"moduleName":"kmm-ci-b","parameters":["greeting_count=3"]})");
  absl::StatusOr<std::vector<std::string>> live = loader->Load();
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(*live, (std::vector<std::string>{"kmm_ci_a", "kmm_ci_b"}));
  EXPECT_EQ(kernel_.calls,
            (std::vector<std::string>{"insert kmm_ci_a []", "insert kmm_ci_b [greeting_count=3]"}));
  EXPECT_TRUE(loader->CheckLive().ok());
}

TEST_F(LoaderTest, LoadingWhatIsAlreadyLiveSucceedsWithoutInserting) {
  kernel_.loaded = {"kmm_ci_a", "kmm_ci_b"};
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  ASSERT_TRUE(loader->Load().ok());
  EXPECT_TRUE(kernel_.calls.empty());
}

TEST_F(LoaderTest, TheSameBuildLoadedIsTakenAsLoaded) {
  kernel_.tree["kmm_ci_a"].build_id = "0b";
  LoadedBuild("kmm_ci_a", "0b");
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  ASSERT_TRUE(loader->Load().ok());
  EXPECT_TRUE(kernel_.calls.empty());
}

TEST_F(LoaderTest, ReplacesAnotherBuildThatNothingUses) {
  kernel_.tree["kmm_ci_a"].build_id = "0b";
  LoadedBuild("kmm_ci_a", "0a");  // left by an unload that failed while it was busy
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a","parameters":["devices=3"]})");
  absl::StatusOr<std::vector<std::string>> live = loader->Load();
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(kernel_.calls,
            (std::vector<std::string>{"remove kmm_ci_a", "insert kmm_ci_a [devices=3]"}));
}

TEST_F(LoaderTest, RefusesAnotherBuildInUseNamingBothBuildsAndTheFix) {
  kernel_.tree["kmm_ci_a"].build_id = "0b";
  LoadedBuild("kmm_ci_a", "0a");
  kernel_.users["kmm_ci_a"] = 1;  // a pod holds /dev/kmm-ci-a0 open
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  const absl::Status status = loader->Load().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(ErrnoOf(status), EBUSY);
  for (const char* part :
       {"kmm_ci_a is loaded from another build", "build-id 0a is loaded", "has 0b",
        "in use (1 users)", "stop what uses it", "pods on this node that hold its devices"}) {
    EXPECT_NE(status.message().find(part), std::string::npos) << part << "\n" << status;
  }
  EXPECT_TRUE(kernel_.calls.empty()) << "the old build stays, nothing is inserted";
}

TEST_F(LoaderTest, ReplacesAnotherBuildOfADependencyAndItsDependentTogether) {
  kernel_.tree["kmm_ci_a"].build_id = "0b";
  kernel_.tree["kmm_ci_b"].build_id = "1b";
  LoadedBuild("kmm_ci_a", "0a");
  LoadedBuild("kmm_ci_b", "1a");  // kmm_ci_b holds kmm_ci_a, and goes with it
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  ASSERT_TRUE(loader->Load().ok());
  EXPECT_EQ(kernel_.calls, (std::vector<std::string>{"remove kmm_ci_b", "remove kmm_ci_a",
                                                     "insert kmm_ci_a []", "insert kmm_ci_b []"}));
}

TEST_F(LoaderTest, RefusesAnotherBuildOfADependencyThatAProcessHolds) {
  kernel_.tree["kmm_ci_a"].build_id = "0b";
  LoadedBuild("kmm_ci_a", "0a");
  kernel_.users["kmm_ci_a"] = 1;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  const absl::Status status = loader->Load().status();
  EXPECT_NE(status.message().find("kmm_ci_a is loaded from another build"), std::string::npos)
      << status;
  EXPECT_TRUE(kernel_.calls.empty());
}

TEST_F(LoaderTest, ComparesEveryModuleOfModulesLoadingOrder) {
  kernel_.tree["kmm_ci_c"] = {};
  kernel_.tree["kmm_ci_c"].build_id = "0c";
  kernel_.tree["kmm_ci_a"].build_id = "0b";
  LoadedBuild("kmm_ci_c", "0c");
  LoadedBuild("kmm_ci_a", "0a");
  auto loader =
      MakeLoader(R"({"moduleName":"kmm_ci_c","modulesLoadingOrder":["kmm_ci_c","kmm_ci_a"]})");
  ASSERT_TRUE(loader->Load().ok());
  EXPECT_EQ(kernel_.calls, (std::vector<std::string>{"remove kmm_ci_a", "insert kmm_ci_a []"}));
}

TEST_F(LoaderTest, FallsBackToSrcversionWithoutBuildIds) {
  kernel_.tree["kmm_ci_a"].srcversion = "NEW";
  kernel_.loaded.insert("kmm_ci_a");
  dir_.WriteFile("sys/module/kmm_ci_a/srcversion", "OLD\n");
  kernel_.users["kmm_ci_a"] = 1;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  const absl::Status status = loader->Load().status();
  EXPECT_NE(status.message().find("srcversion OLD is loaded"), std::string::npos) << status;
}

TEST_F(LoaderTest, FirstTimeMakesAlreadyLoadedAnError) {
  kernel_.loaded = {"kmm_ci_a"};
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a","args":{"load":["--first-time"]}})");
  EXPECT_EQ(loader->Load().status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(LoaderTest, RefusesWrongVermagicBeforeInserting) {
  kernel_.tree["kmm_ci_a"].vermagic = "6.1.0-99-amd64";
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  const absl::Status status = loader->Load().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("6.1.0-99-amd64"), std::string::npos) << status;
  EXPECT_NE(status.message().find(kKernel), std::string::npos) << status;
  EXPECT_TRUE(kernel_.calls.empty()) << "nothing may be inserted";
}

TEST_F(LoaderTest, MapsInsertErrorsOnce) {
  kernel_.insert_errno["kmm_ci_a"] = EKEYREJECTED;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  const absl::Status status = loader->Load().status();
  EXPECT_EQ(ErrnoOf(status), EKEYREJECTED);
  EXPECT_NE(status.message().find("enforces module signatures"), std::string::npos) << status;
}

TEST_F(LoaderTest, ExplainsPermissionDeniedFromNodeSettings) {
  dir_.WriteFile("proc/sys/kernel/modules_disabled", "1\n");
  kernel_.insert_errno["kmm_ci_a"] = EPERM;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  EXPECT_NE(loader->Load().status().message().find("modules_disabled"), std::string::npos);
}

TEST_F(LoaderTest, ExplainsPermissionDeniedByLockdownWhenSecurityfsIsNotMounted) {
  private_lockdown_ = "none [integrity] confidentiality";  // no sys/kernel/security/lockdown
  kernel_.insert_errno["kmm_ci_a"] = EPERM;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  const absl::Status status = loader->Load().status();
  EXPECT_NE(status.message().find("kernel lockdown is in \"integrity\" mode"), std::string::npos)
      << status;
}

TEST_F(LoaderTest, ModulesLoadingOrderLoadsDependenciesFirstAndUnloadsInListOrder) {
  kernel_.tree["kmm_ci_c"] = {};
  auto loader =
      MakeLoader(R"({"moduleName":"kmm_ci_c","modulesLoadingOrder":["kmm_ci_c","kmm_ci_a"]})");
  ASSERT_TRUE(loader->Load().ok());
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_EQ(kernel_.calls, (std::vector<std::string>{"insert kmm_ci_a []", "insert kmm_ci_c []",
                                                     "remove kmm_ci_c", "remove kmm_ci_a"}));
}

TEST_F(LoaderTest, RemovesLoadedInTreeModulesFirstAndSkipsMissingOnes) {
  kernel_.loaded = {"dummy"};
  auto loader =
      MakeLoader(R"({"moduleName":"kmm_ci_a","inTreeModulesToRemove":["dummy","absent"]})");
  ASSERT_TRUE(loader->Load().ok());
  EXPECT_EQ(kernel_.calls, (std::vector<std::string>{"remove dummy", "insert kmm_ci_a []"}));
  EXPECT_EQ(kernel_.roots.front(), "/") << "in-tree modules come from the host tree";
}

TEST_F(LoaderTest, UnloadRemovesUnusedDependenciesToo) {
  kernel_.loaded = {"kmm_ci_a", "kmm_ci_b"};
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_EQ(kernel_.calls, (std::vector<std::string>{"remove kmm_ci_b", "remove kmm_ci_a"}));
  EXPECT_TRUE(kernel_.loaded.empty());
}

TEST_F(LoaderTest, UnloadWaitsForADependencyOfTheModuleImageThatAProcessHolds) {
  kernel_.loaded = {"kmm_ci_a", "kmm_ci_b"};
  kernel_.users["kmm_ci_a"] = 1;  // a process holds /dev/kmm-ci-a0 open
  kernel_.busy_removals["kmm_ci_a"] = 1000;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  const absl::Status status = loader->Unload();
  EXPECT_EQ(ErrnoOf(status), EBUSY)
      << "kmm loaded kmm_ci_a from the image: not done while it stays";
  EXPECT_NE(status.message().find("kmm_ci_a is still in use"), std::string::npos) << status;
  EXPECT_EQ(kernel_.loaded, std::set<std::string>{"kmm_ci_a"});
}

TEST_F(LoaderTest, UnloadFinishesOnceTheDependencyIsReleased) {
  kernel_.loaded = {"kmm_ci_a", "kmm_ci_b"};
  kernel_.users["kmm_ci_a"] = 1;
  kernel_.busy_removals["kmm_ci_a"] = 2;  // the process closes the device after two tries
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_TRUE(kernel_.loaded.empty());
}

TEST_F(LoaderTest, ARetriedUnloadRemovesTheDependencyAnEarlierOneLeft) {
  kernel_.loaded = {"kmm_ci_a"};  // kmm_ci_b went; kmm_ci_a was held open at the time
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_TRUE(kernel_.loaded.empty());
  EXPECT_EQ(kernel_.calls, std::vector<std::string>{"remove kmm_ci_a"});
}

TEST_F(LoaderTest, ARetriedUnloadFailsWhileTheLeftDependencyIsStillHeld) {
  kernel_.loaded = {"kmm_ci_a"};
  kernel_.users["kmm_ci_a"] = 1;
  kernel_.busy_removals["kmm_ci_a"] = 1000;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  EXPECT_EQ(ErrnoOf(loader->Unload()), EBUSY);
  EXPECT_EQ(kernel_.loaded, std::set<std::string>{"kmm_ci_a"});
}

TEST_F(LoaderTest, UnloadKeepsADependencyAnotherModuleNeeds) {
  kernel_.tree["kmm_ci_c"] = {{"kmm_ci_a"}};  // another Module's module, sharing kmm_ci_a
  kernel_.loaded = {"kmm_ci_a", "kmm_ci_b", "kmm_ci_c"};
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_EQ(kernel_.loaded, (std::set<std::string>{"kmm_ci_a", "kmm_ci_c"}));
}

TEST_F(LoaderTest, UnloadKeepsAnInTreeDependencyOthersUse) {
  kernel_.tree["kmm_ci_d"] = {{"dummy"}};  // "dummy" comes from the host's tree
  kernel_.loaded = {"dummy", "kmm_ci_d"};
  kernel_.users["dummy"] = 1;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_d"})");
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_EQ(kernel_.loaded, std::set<std::string>{"dummy"});
  EXPECT_EQ(std::count(kernel_.calls.begin(), kernel_.calls.end(), "remove dummy"), 0);
}

TEST_F(LoaderTest, UnloadRetriesWhileBusyThenSucceeds) {
  kernel_.loaded = {"kmm_ci_a"};
  kernel_.busy_removals["kmm_ci_a"] = 3;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  const absl::Time start = clock_.Now();
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_EQ(std::count(kernel_.calls.begin(), kernel_.calls.end(), "remove kmm_ci_a"), 4);
  // Backoff 100 ms, 200 ms, 400 ms.
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(700));
}

TEST_F(LoaderTest, UnloadGivesUpAtTheDeadlineWithAClearError) {
  kernel_.loaded = {"kmm_ci_a"};
  kernel_.busy_removals["kmm_ci_a"] = 1000;
  kernel_.users["kmm_ci_a"] = 2;
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_a"})");
  const absl::Time start = clock_.Now();
  const absl::Status status = loader->Unload();
  EXPECT_EQ(ErrnoOf(status), EBUSY);
  EXPECT_NE(status.message().find("kmm_ci_a is still in use"), std::string::npos) << status;
  EXPECT_NE(status.message().find("2 users"), std::string::npos) << status;
  EXPECT_LE(clock_.Now() - start, absl::Seconds(60));
  EXPECT_GE(clock_.Now() - start, absl::Seconds(55));
  EXPECT_TRUE(kernel_.loaded.contains("kmm_ci_a"));
}

TEST_F(LoaderTest, UnloadingWhatIsNotLoadedSucceeds) {
  auto loader = MakeLoader(R"({"moduleName":"kmm_ci_b"})");
  EXPECT_TRUE(loader->Unload().ok());
  EXPECT_TRUE(kernel_.calls.empty());
}

TEST_F(LoaderTest, AnotherKernelLoadsNothingAndUnloadIsDone) {
  kernel_.loaded = {"kmm_ci_a"};
  auto loader =
      MakeLoader(R"({"moduleName":"kmm_ci_a","kernelVersion":"5.15.0-43-generic"})", kKernel);
  EXPECT_FALSE(loader->TargetsRunningKernel());
  const absl::Status load = loader->Load().status();
  EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(load.message().find("5.15.0-43-generic"), std::string::npos);
  EXPECT_NE(load.message().find(kKernel), std::string::npos);
  EXPECT_FALSE(loader->CheckLive().ok());
  EXPECT_TRUE(loader->Unload().ok());
  EXPECT_TRUE(kernel_.calls.empty()) << "the old kernel's module must not be touched";
}

TEST_F(LoaderTest, CheckLiveNamesTheModuleThatIsNotLive) {
  kernel_.loaded = {"kmm_ci_a"};
  auto loader =
      MakeLoader(R"({"moduleName":"kmm_ci_b","modulesLoadingOrder":["kmm_ci_b","kmm_ci_a"]})");
  const absl::Status status = loader->CheckLive();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "kmm_ci_b is not loaded");
}

TEST_F(LoaderTest, InstallsFirmwareOnLoadAndRemovesItOnUnload) {
  dir_.WriteFile("image/firmware/kmm-ci-a.bin", "blob");
  const std::string parameter = dir_.WriteFile("sys/module/firmware_class/parameters/path", "");
  const std::string host = dir_.Join("host-firmware");
  auto loader = MakeLoader(fmt::format(
      R"({{"moduleName":"kmm_ci_a","dirName":"{}","firmwarePath":"/firmware",
          "firmwareHostPath":"{}"}})",
      dir_.Join("image"), host));
  ASSERT_TRUE(loader->Load().ok());
  EXPECT_EQ(testing::ReadFile(host + "/kmm-ci-a.bin"), "blob");
  EXPECT_EQ(testing::ReadFile(parameter), host);
  ASSERT_TRUE(loader->Unload().ok());
  EXPECT_FALSE(std::filesystem::exists(host + "/kmm-ci-a.bin"));
  EXPECT_EQ(testing::ReadFile(parameter), std::string(1, '\0')) << "the empty value is restored";
}

TEST_F(LoaderTest, RestoresTheFirmwareSearchPathWhenTheLastModuleSharingItUnloads) {
  dir_.WriteFile("image/firmware/kmm-ci-a.bin", "blob");
  const std::string parameter =
      dir_.WriteFile("sys/module/firmware_class/parameters/path", "/opt/vendor\n");
  const std::string host = dir_.Join("host-firmware");
  auto config = [&](const std::string& module) {
    return fmt::format(
        R"({{"moduleName":"{}","dirName":"{}","firmwarePath":"/firmware",
            "firmwareHostPath":"{}"}})",
        module, dir_.Join("image"), host);
  };
  auto a = MakeLoader(config("kmm_ci_a"));
  auto c = MakeLoader(config("kmm_ci_b"));
  ASSERT_TRUE(a->Load().ok());
  ASSERT_TRUE(c->Load().ok());
  ASSERT_TRUE(MakeLoader(config("kmm_ci_a"))->Unload().ok()) << "a restarted loader unloads";
  EXPECT_EQ(testing::ReadFile(parameter), host) << "kmm_ci_b still has firmware there";
  ASSERT_TRUE(c->Unload().ok());
  EXPECT_EQ(testing::ReadFile(parameter), "/opt/vendor");
}

}  // namespace
}  // namespace kmm::loader
