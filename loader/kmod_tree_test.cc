// The libkmod backend resolving real modules (the sample kmm_ci_a/kmm_ci_b built against
// the installed kernel headers) in module trees laid out as a module image and a host:
// everything short of inserting, which the qemu e2e suite does.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "common/testing/temp_dir.h"
#include "loader/kmod.h"
#include "loader/kmod_errors.h"

namespace kmm::loader {
namespace {

namespace fs = std::filesystem;

class KmodTreeTest : public ::testing::Test {
 protected:
  // Puts `modules` under <root>/lib/modules/<kernel>/<subdir>/ and indexes them as a module
  // image build does (depmod -b).
  void MakeTree(const std::string& root, const std::string& subdir,
                const std::vector<std::string>& modules) {
    const fs::path dir = fs::path(root) / "lib/modules" / KMM_TEST_KERNEL / subdir;
    fs::create_directories(dir);
    for (const std::string& module : modules) {
      fs::copy_file(fs::path(KMM_TEST_MODULES_DIR) / module, dir / fs::path(module).filename(),
                    fs::copy_options::overwrite_existing);
    }
    const std::string depmod =
        "depmod -b " + root + " " + std::string(KMM_TEST_KERNEL) + " 2>/dev/null";
    ASSERT_EQ(std::system(depmod.c_str()), 0) << depmod;
  }

  std::unique_ptr<KmodBackend> Backend(const std::string& image, const std::string& host) {
    auto backend = MakeLibkmodBackend(image, host, KMM_TEST_KERNEL);
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? std::move(*backend) : nullptr;
  }

  testing::TempDir dir_;
};

// Two builds of kmm_ci_a (test/modules' KMM_CI_A_BUILD) are told apart by build-id, as
// `readelf -n` shows it; neither has a srcversion (no MODULE_VERSION).
TEST_F(KmodTreeTest, FileIdentityIsTheBuildIdOfTheModuleFile) {
  MakeTree(dir_.Join("opt"), "extra", {"kmm_ci_a.ko"});
  MakeTree(dir_.Join("other"), "extra", {"other-build/kmm_ci_a.ko"});
  auto image = Backend(dir_.Join("opt"), dir_.Join("opt"));
  auto other = Backend(dir_.Join("other"), dir_.Join("other"));
  ASSERT_NE(image, nullptr);
  ASSERT_NE(other, nullptr);
  absl::StatusOr<std::vector<ModuleFile>> a = image->Resolve("kmm_ci_a");
  absl::StatusOr<std::vector<ModuleFile>> b = other->Resolve("kmm_ci_a");
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  const ModuleIdentity first = image->FileIdentity(a->back());
  const ModuleIdentity second = other->FileIdentity(b->back());
  EXPECT_EQ(first.build_id.size(), 40u) << first.build_id;
  EXPECT_EQ(second.build_id.size(), 40u) << second.build_id;
  EXPECT_NE(first.build_id, second.build_id);
  EXPECT_EQ(first.srcversion, "");
  const std::string readelf =
      "readelf -n " + a->back().path + " | grep -q 'Build ID: " + first.build_id + "'";
  EXPECT_EQ(std::system(readelf.c_str()), 0) << readelf;
}

TEST_F(KmodTreeTest, ResolvesDependenciesFirstFromTheImage) {
  MakeTree(dir_.Join("opt"), "extra", {"kmm_ci_a.ko", "kmm_ci_b.ko"});
  MakeTree(dir_.Join("host"), "kernel", {});
  auto kmod = Backend(dir_.Join("opt"), dir_.Join("host"));
  ASSERT_NE(kmod, nullptr);
  absl::StatusOr<std::vector<ModuleFile>> files = kmod->Resolve("kmm-ci-b");
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].name, "kmm_ci_a");
  EXPECT_EQ((*files)[1].name, "kmm_ci_b");
  EXPECT_EQ((*files)[1].path,
            dir_.Join("opt/lib/modules/" + std::string(KMM_TEST_KERNEL) + "/extra/kmm_ci_b.ko"));
  EXPECT_EQ((*files)[0].vermagic, KMM_TEST_KERNEL);
  EXPECT_FALSE((*files)[0].from_host);
  EXPECT_TRUE(CheckVermagic((*files)[0], KMM_TEST_KERNEL).ok());
}

TEST_F(KmodTreeTest, ResolvesInTreeDependenciesFromTheHost) {
  MakeTree(dir_.Join("opt"), "extra", {"kmm_ci_b.ko"});
  MakeTree(dir_.Join("host"), "kernel/drivers/misc", {"kmm_ci_a.ko"});
  auto kmod = Backend(dir_.Join("opt"), dir_.Join("host"));
  ASSERT_NE(kmod, nullptr);
  absl::StatusOr<std::vector<ModuleFile>> files = kmod->Resolve("kmm_ci_b");
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].name, "kmm_ci_a");
  EXPECT_TRUE((*files)[0].from_host);
  EXPECT_NE((*files)[0].path.find("/host/lib/modules/"), std::string::npos) << (*files)[0].path;
  EXPECT_FALSE((*files)[1].from_host);
}

TEST_F(KmodTreeTest, MissingModuleNamesBothTreesAndWhoNeededIt) {
  MakeTree(dir_.Join("opt"), "extra", {"kmm_ci_b.ko"});
  MakeTree(dir_.Join("host"), "kernel", {});
  auto kmod = Backend(dir_.Join("opt"), dir_.Join("host"));
  ASSERT_NE(kmod, nullptr);
  const absl::Status status = kmod->Resolve("kmm_ci_b").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("module kmm_ci_a (a dependency of kmm_ci_b) not found"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find(dir_.Join("opt")), std::string::npos) << status;
  EXPECT_NE(status.message().find(dir_.Join("host")), std::string::npos) << status;
  EXPECT_EQ(kmod->Resolve("no_such_module").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KmodTreeTest, ReportsTheVermagicOfAModuleBuiltForAnotherKernel) {
  fs::create_directories(dir_.Join("bad"));
  const std::string bad = dir_.Join("bad/kmm_ci_a.ko");
  const std::string rewrite = std::string(KMM_BAD_VERMAGIC_TOOL) + " " + KMM_TEST_MODULES_DIR +
                              "/kmm_ci_a.ko " + bad + " > /dev/null";
  ASSERT_EQ(std::system(rewrite.c_str()), 0) << rewrite;
  const fs::path dir = dir_.Join("opt/lib/modules/" + std::string(KMM_TEST_KERNEL) + "/extra");
  fs::create_directories(dir);
  fs::copy_file(bad, dir / "kmm_ci_a.ko");
  ASSERT_EQ(std::system(("depmod -b " + dir_.Join("opt") + " " + KMM_TEST_KERNEL).c_str()), 0);
  auto kmod = Backend(dir_.Join("opt"), dir_.Join("opt"));
  ASSERT_NE(kmod, nullptr);
  absl::StatusOr<std::vector<ModuleFile>> files = kmod->Resolve("kmm_ci_a");
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_NE((*files)[0].vermagic, KMM_TEST_KERNEL);
  const absl::Status refused = CheckVermagic((*files)[0], KMM_TEST_KERNEL);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find((*files)[0].vermagic), std::string::npos) << refused;
}

TEST_F(KmodTreeTest, NothingLoadedMeansNotLoaded) {
  MakeTree(dir_.Join("opt"), "extra", {"kmm_ci_a.ko"});
  auto kmod = Backend(dir_.Join("opt"), dir_.Join("opt"));
  ASSERT_NE(kmod, nullptr);
  EXPECT_EQ(kmod->State("kmm_ci_a"), ModuleState::kNotLoaded);
  EXPECT_EQ(kmod->Users("kmm_ci_a"), 0);
}

}  // namespace
}  // namespace kmm::loader
