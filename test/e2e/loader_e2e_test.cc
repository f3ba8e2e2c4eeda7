// Asserts what kmm-loader did on a real kernel: the qemu node runs loader-scenarios.sh
// (booted once by the e2e_loader_vms fixture) and this test reads its console.
#include <gtest/gtest.h>

#include "test/e2e/console_log.h"

namespace kmm::e2e {
namespace {

class LoaderOnRealKernel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    normal_ = new std::map<std::string, Section>(
        ParseConsoleLog(std::string(KMM_E2E_OUT) + "/normal/console.log"));
    sig_enforce_ = new std::map<std::string, Section>(
        ParseConsoleLog(std::string(KMM_E2E_OUT) + "/sig-enforce/console.log"));
    lockdown_ = new std::map<std::string, Section>(
        ParseConsoleLog(std::string(KMM_E2E_OUT) + "/lockdown/console.log"));
  }
  static const Section& Normal(const std::string& name) { return Get(*normal_, name); }
  static const Section& SigEnforce(const std::string& name) { return Get(*sig_enforce_, name); }
  static const Section& Lockdown(const std::string& name) { return Get(*lockdown_, name); }

 private:
  static const Section& Get(const std::map<std::string, Section>& sections,
                            const std::string& name) {
    static const Section missing;
    auto it = sections.find(name);
    EXPECT_NE(it, sections.end()) << "scenario " << name << " did not run; see " << KMM_E2E_OUT
                                  << "/*/console.log";
    return it == sections.end() ? missing : it->second;
  }
  static std::map<std::string, Section>* normal_;
  static std::map<std::string, Section>* sig_enforce_;
  static std::map<std::string, Section>* lockdown_;
};
std::map<std::string, Section>* LoaderOnRealKernel::normal_ = nullptr;
std::map<std::string, Section>* LoaderOnRealKernel::sig_enforce_ = nullptr;
std::map<std::string, Section>* LoaderOnRealKernel::lockdown_ = nullptr;

TEST_F(LoaderOnRealKernel, LoadsModuleWithDependencyAndParameters) {
  const Section& s = Normal("load_with_dependency");
  ASSERT_EQ(s.exit_codes, (std::vector<int>{0, 0, 0, 1})) << s.Text();
  EXPECT_EQ(s.ValueOf("loaded: "), "kmm_ci_a kmm_ci_b ") << s.Text();
  EXPECT_EQ(s.ValueOf("/sys/module/kmm_ci_b/parameters/greeting_count="), "3");
  EXPECT_EQ(s.ValueOf("/sys/module/kmm_ci_a/parameters/devices="), "2");
  EXPECT_TRUE(s.Contains("kmm-ci-a0 kmm-ci-a1 ")) << s.Text();
  EXPECT_EQ(s.ValueOf("/run/kmm/b.term="), "loaded: kmm_ci_a, kmm_ci_b");
  EXPECT_LT(s.IndexOf("loaded kmm_ci_a from /opt/lib/modules/"),
            s.IndexOf("loaded kmm_ci_b from /opt/lib/modules/"));
  // After unload: nothing left, and status says so.
  EXPECT_LT(s.IndexOf("unloaded kmm_ci_b"), s.IndexOf("unloaded kmm_ci_a"));
  EXPECT_TRUE(s.Contains("loaded: ")) << s.Text();
  EXPECT_TRUE(s.Contains("not ready: kmm_ci_b is not loaded")) << s.Text();
}

TEST_F(LoaderOnRealKernel, LoadsZstdAndXzCompressedModules) {
  const Section& s = Normal("compressed_modules");
  ASSERT_EQ(s.exit_codes, (std::vector<int>{0, 0})) << s.Text();
  EXPECT_EQ(s.ValueOf("loaded: "), "kmm_ci_a kmm_ci_b ") << s.Text();
  EXPECT_TRUE(s.Contains("loaded kmm_ci_a from /opt-compressed/lib/modules/")) << s.Text();
  EXPECT_TRUE(s.Contains("kmm_ci_a.ko.zst")) << s.Text();
  EXPECT_TRUE(s.Contains("kmm_ci_b.ko.xz")) << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ") << s.Text();
}

TEST_F(LoaderOnRealKernel, SecondLoadAndSecondUnloadSucceed) {
  const Section& s = Normal("idempotent_load");
  EXPECT_EQ(s.exit_codes, (std::vector<int>{0, 0, 0, 0})) << s.Text();
  EXPECT_TRUE(s.Contains("kmm_ci_a is already loaded")) << s.Text();
  EXPECT_TRUE(s.Contains("kmm-ci-a0 kmm-ci-a1 kmm-ci-a2 ")) << s.Text();
  EXPECT_TRUE(s.Contains("kmm_ci_a is not loaded; nothing to unload")) << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ");
}

TEST_F(LoaderOnRealKernel, ModulesLoadingOrderLoadsFromTheEndAndUnloadsFromTheStart) {
  const Section& s = Normal("loading_order");
  EXPECT_EQ(s.exit_codes, (std::vector<int>{0, 0})) << s.Text();
  EXPECT_LT(s.IndexOf("loaded kmm_ci_a"), s.IndexOf("loaded kmm_ci_b")) << s.Text();
  EXPECT_LT(s.IndexOf("unloaded kmm_ci_b"), s.IndexOf("unloaded kmm_ci_a")) << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ");
}

TEST_F(LoaderOnRealKernel, RemovesInTreeModuleBeforeLoading) {
  const Section& s = Normal("in_tree_removal");
  EXPECT_EQ(s.exit_codes, (std::vector<int>{0, 0, 0})) << s.Text();
  EXPECT_EQ(s.lines[s.IndexOf("KMM-RC") + 1], "loaded: dummy ") << s.Text();
  EXPECT_TRUE(s.Contains("unloaded dummy")) << s.Text();
  EXPECT_TRUE(s.Contains("in-tree module not_a_module is not loaded")) << s.Text();
  EXPECT_LT(s.IndexOf("unloaded dummy"), s.IndexOf("loaded kmm_ci_a from"));
  EXPECT_TRUE(s.Contains("loaded: kmm_ci_a ")) << "dummy must be gone\n" << s.Text();
}

TEST_F(LoaderOnRealKernel, CopiesFirmwareThatTheModuleLoads) {
  const Section& s = Normal("firmware");
  EXPECT_EQ(s.exit_codes, (std::vector<int>{0, 0})) << s.Text();
  EXPECT_EQ(s.ValueOf("installed-firmware-bytes: "), "1234");
  EXPECT_EQ(s.ValueOf("/sys/module/firmware_class/parameters/path="), "/var/lib/kmm-firmware");
  EXPECT_EQ(s.ValueOf("/sys/class/misc/kmm-ci-a0/firmware_size="), "1234")
      << "the module itself loaded the firmware\n"
      << s.Text();
  EXPECT_EQ(s.ValueOf("/var/lib/kmm-firmware/kmm-ci-a.bin="), "<missing>")
      << "firmware must be removed on unload";
  EXPECT_EQ(s.ValueOf("search-path-after-unload: "), "[]")
      << "kmm set the search path, so its unload restores the empty one\n"
      << s.Text();
  EXPECT_EQ(s.ValueOf("firmware-dir-after-unload: "), "[]") << "no bookkeeping left\n" << s.Text();
}

TEST_F(LoaderOnRealKernel, RunLoadsReportsReadyAndUnloadsOnSigterm) {
  const Section& s = Normal("run_until_sigterm");
  EXPECT_TRUE(s.Contains("ready-file: present")) << s.Text();
  EXPECT_EQ(s.exit_codes, (std::vector<int>{0})) << "status while running\n" << s.Text();
  EXPECT_EQ(s.ValueOf("run-exit: "), "0");
  EXPECT_TRUE(s.Contains("received SIGTERM; shutting down")) << s.Text();
  EXPECT_LT(s.IndexOf("received SIGTERM"), s.IndexOf("unloaded kmm_ci_b"));
  EXPECT_EQ(s.ValueOf("/run/kmm/ready="), "<missing>");
  EXPECT_EQ(s.ValueOf("/run/kmm/run.term="), "unloaded");
  EXPECT_EQ(s.lines[s.IndexOf("/run/kmm/ready=") - 1], "loaded: ") << s.Text();
}

TEST_F(LoaderOnRealKernel, UnloadRetriesWhileADeviceIsOpenThenReportsTheBusyModule) {
  const Section& s = Normal("unload_while_busy");
  // load, unload (busy for ~2.5 s, then free), load, unload (busy past 1 s), final unload.
  EXPECT_EQ(s.exit_codes, (std::vector<int>{0, 0, 0, 1, 0})) << s.Text();
  EXPECT_TRUE(s.Contains("kmm_ci_a is in use; retrying until it is free")) << s.Text();
  const std::string message = s.ValueOf("/run/kmm/busy.term=");
  EXPECT_NE(message.find("unload failed: kmm_ci_a is still in use"), std::string::npos) << message;
  EXPECT_NE(message.find("EBUSY"), std::string::npos) << message;
  EXPECT_EQ(s.lines.back(), "loaded: ");
}

TEST_F(LoaderOnRealKernel, AnotherBuildLoadedIsRefusedWhileInUseAndReplacedOtherwise) {
  const Section& s = Normal("other_build_loaded");
  // old build, new refused (held open), new replaces it, unload, old, kmm_ci_b, unload.
  ASSERT_EQ(s.exit_codes, (std::vector<int>{0, 1, 0, 0, 0, 0, 0})) << s.Text();
  const std::string message = s.ValueOf("/run/kmm/new.term=");
  for (const char* part :
       {"load failed: kmm_ci_a is loaded from another build", "build-id ", "/opt/lib/modules/",
        "in use", "stop what uses it", "the pods on this node that hold its devices"}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << "\n" << message;
  }
  // The kernel's build parameter: "other" until replaced, then the image's "a".
  const std::string build = "/sys/module/kmm_ci_a/parameters/build=";
  std::vector<std::string> builds;
  for (const std::string& line : s.lines) {
    if (line.rfind(build, 0) == 0) builds.push_back(line.substr(build.size()));
  }
  EXPECT_EQ(builds, (std::vector<std::string>{"other", "other", "a", "a"})) << s.Text();
  EXPECT_TRUE(s.Contains("kmm_ci_a is loaded from another build (build-id ")) << s.Text();
  EXPECT_TRUE(s.Contains("replacing it")) << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ") << s.Text();
}

TEST_F(LoaderOnRealKernel, RefusesModuleBuiltForAnotherKernelBeforeInserting) {
  const Section& s = Normal("vermagic_mismatch");
  EXPECT_EQ(s.exit_codes, (std::vector<int>{1})) << s.Text();
  EXPECT_TRUE(s.Contains("kmm_ci_a was built for kernel 6.")) << s.Text();
  EXPECT_TRUE(s.Contains("but this node runs kernel 6.")) << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ") << "init_module must not have been tried";
}

TEST_F(LoaderOnRealKernel, LoaderForAnotherKernelLoadsNothingAndUnloadSucceeds) {
  const Section& s = Normal("wrong_kernel");
  EXPECT_EQ(s.exit_codes, (std::vector<int>{1, 1, 0})) << s.Text();
  EXPECT_TRUE(s.Contains("this loader is for kernel 5.15.0-43-generic but the node runs"))
      << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ");
}

TEST_F(LoaderOnRealKernel, DevicePluginAdvertisesRealDevicesAndStopsBeforeUnload) {
  const Section& s = Normal("device_plugin");
  EXPECT_TRUE(s.Contains("ready-file: present")) << s.Text();
  EXPECT_EQ(s.ValueOf("KUBELET-REGISTERED "), "example.com/kmm-ci-a kmm-example.com_kmm-ci-a.sock");
  EXPECT_EQ(s.ValueOf("KUBELET-LIST "), "kmm-ci-a0:Healthy,kmm-ci-a1:Healthy,kmm-ci-a2:Healthy")
      << "the first list has every device";
  EXPECT_EQ(s.ValueOf("KUBELET-ALLOCATE "), "/dev/kmm-ci-a1");
  // Writing 0 to the health attribute reaches the kubelet as Unhealthy, and back.
  EXPECT_TRUE(s.Contains("saw-unhealthy")) << s.Text();
  const int unhealthy = s.IndexOf("KUBELET-LIST kmm-ci-a0:Unhealthy,kmm-ci-a1:Healthy");
  ASSERT_GE(unhealthy, 0) << s.Text();
  EXPECT_EQ(s.lines[unhealthy + 1],
            "KUBELET-LIST kmm-ci-a0:Healthy,kmm-ci-a1:Healthy,kmm-ci-a2:Healthy");
  EXPECT_TRUE(s.Contains("KUBELET-STREAM-END")) << s.Text();
  EXPECT_EQ(s.ValueOf("run-exit: "), "0");
  // The static kmm-loader hands run to kmm-loader-run, whose process loads, serves the
  // plugin, stops it, then unloads.
  EXPECT_TRUE(s.Contains("continuing as /usr/bin/kmm-loader-run, which runs it in-process"))
      << s.Text();
  const int stopped = s.IndexOf("device plugin stopped");
  ASSERT_GE(stopped, 0) << s.Text();
  EXPECT_LT(stopped, s.IndexOf("unloaded kmm_ci_a")) << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ");
}

TEST_F(LoaderOnRealKernel, UnsignedModuleRefusedWhenSignaturesAreEnforced) {
  const Section& s = SigEnforce("unsigned_refused");
  EXPECT_EQ(s.ValueOf("/sys/module/module/parameters/sig_enforce="), "Y");
  ASSERT_EQ(s.exit_codes, (std::vector<int>{1, 0})) << s.Text();
  EXPECT_TRUE(
      s.Contains("the kernel enforces module signatures and rejected kmm_ci_a "
                 "(EKEYREJECTED)"))
      << s.Text();
  EXPECT_TRUE(s.Contains("it is unsigned, or signed with a key the node does not trust"))
      << s.Text();
  EXPECT_TRUE(s.Contains("the Module's sign section")) << s.Text();
  EXPECT_TRUE(s.Contains("loaded: dummy ")) << "Debian's signed module still loads\n" << s.Text();
}

TEST_F(LoaderOnRealKernel, LockdownIsNamedWhereSecurityfsIsNotMounted) {
  const Section& s = Lockdown("lockdown_in_pod");
  EXPECT_EQ(s.ValueOf("/sys/module/module/parameters/sig_enforce="), "N");
  EXPECT_EQ(s.ValueOf("/sys/kernel/security/lockdown="), "<missing>") << "as in a pod\n"
                                                                      << s.Text();
  ASSERT_EQ(s.exit_codes, (std::vector<int>{1})) << s.Text();
  EXPECT_EQ(s.ValueOf("/tmp/a.term="),
            "load failed: the kernel refused to load kmm_ci_a (EPERM): kernel lockdown is in "
            "\"integrity\" mode, which only allows signed modules; sign the module with a key "
            "the node trusts (the Module's sign section)")
      << s.Text();
  EXPECT_EQ(s.ValueOf("securityfs-mounts: "), "0") << "the private mount is gone\n" << s.Text();
  EXPECT_TRUE(s.Contains("/sys/kernel/security/lockdown=none [integrity] confidentiality"))
      << s.Text();
  EXPECT_EQ(s.lines.back(), "loaded: ") << s.Text();
}

}  // namespace
}  // namespace kmm::e2e
