#include "loader/kmod_errors.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "common/status.h"
#include "common/testing/temp_dir.h"

namespace kmm::loader {
namespace {

const ModuleFile kModule{"kmm_ci_a", "/opt/lib/modules/6.1.0-56-amd64/extra/kmm_ci_a.ko",
                         "6.1.0-56-amd64", false};

absl::Status Failure(int errnum, const LoadRestrictions& restrictions = {}) {
  return InsertFailure(ErrnoError(errnum, "insert kmm_ci_a"), kModule, "devices=3",
                       "6.1.0-56-amd64", restrictions);
}

TEST(InsertFailure, KeepsTheErrnoForEveryMapping) {
  for (int errnum : {ENOEXEC, EKEYREJECTED, ENOKEY, EBADMSG, ENOENT, EINVAL, EPERM, ENOMEM}) {
    EXPECT_EQ(ErrnoOf(Failure(errnum)), errnum) << errnum;
  }
}

TEST(InsertFailure, WrongFormatNamesBothKernels) {
  const absl::Status status = Failure(ENOEXEC);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("invalid module format"), std::string::npos) << status;
  EXPECT_NE(status.message().find(kModule.path), std::string::npos) << status;
}

TEST(InsertFailure, RejectedSignatureSaysSignaturesAreEnforced) {
  const absl::Status status = Failure(EKEYREJECTED);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(status.message().find("enforces module signatures"), std::string::npos) << status;
  EXPECT_NE(status.message().find("unsigned, or signed with a key the node does not trust"),
            std::string::npos)
      << status;
  // Both fixes: the Module's in-cluster signing, or signing before the image is built.
  EXPECT_NE(status.message().find("sign section"), std::string::npos) << status;
  EXPECT_NE(status.message().find("scripts/sign-file"), std::string::npos) << status;
}

TEST(InsertFailure, MissingSymbolOrParameterNamesTheOptions) {
  const absl::Status status = Failure(ENOENT);
  EXPECT_NE(status.message().find("could not resolve a symbol or a parameter"), std::string::npos);
  EXPECT_NE(status.message().find("[devices=3]"), std::string::npos) << status;
}

TEST(InsertFailure, PermissionNamesTheNodeRestriction) {
  LoadRestrictions restrictions;
  EXPECT_NE(Failure(EPERM, restrictions).message().find("CAP_SYS_MODULE"), std::string::npos);
  restrictions.sig_enforce = true;
  EXPECT_NE(Failure(EPERM, restrictions).message().find("module.sig_enforce"), std::string::npos);
  restrictions.lockdown = "integrity";
  EXPECT_NE(Failure(EPERM, restrictions).message().find("lockdown is in \"integrity\" mode"),
            std::string::npos);
  restrictions.loadpin_enforce = true;
  EXPECT_NE(Failure(EPERM, restrictions).message().find("LoadPin"), std::string::npos);
  restrictions.modules_disabled = true;
  EXPECT_NE(Failure(EPERM, restrictions).message().find("modules_disabled"), std::string::npos);
}

TEST(InsertFailure, OtherErrorsKeepTheKernelMessage) {
  const absl::Status status = Failure(ENOMEM);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("Cannot allocate memory"), std::string::npos) << status;
}

absl::StatusOr<std::string> NoSecurityfs() { return ErrnoError(EPERM, "mount securityfs"); }

TEST(ReadLoadRestrictions, ReadsProcAndSys) {
  testing::TempDir root;
  LoadRestrictions none = ReadLoadRestrictions(root.Join("proc"), root.Join("sys"), NoSecurityfs);
  EXPECT_FALSE(none.modules_disabled);
  EXPECT_FALSE(none.sig_enforce);
  EXPECT_TRUE(none.lockdown.empty());
  root.WriteFile("proc/sys/kernel/modules_disabled", "1\n");
  root.WriteFile("proc/sys/kernel/loadpin/enforce", "1\n");
  root.WriteFile("sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
  root.WriteFile("sys/module/module/parameters/sig_enforce", "Y\n");
  root.WriteFile("proc/self/status", "Name:\tkmm-loader\nCapEff:\t0000000000010000\n");
  LoadRestrictions all = ReadLoadRestrictions(root.Join("proc"), root.Join("sys"), NoSecurityfs);
  EXPECT_TRUE(all.modules_disabled);
  EXPECT_TRUE(all.loadpin_enforce);
  EXPECT_EQ(all.lockdown, "integrity");
  EXPECT_TRUE(all.sig_enforce);
  EXPECT_EQ(all.cap_sys_module, true);
  EXPECT_EQ(none.cap_sys_module, std::nullopt);
}

// In a pod securityfs is usually not mounted: /sys/kernel/security/lockdown is missing.
TEST(ReadLoadRestrictions, ReadsLockdownFromAPrivateSecurityfsWhenNotMounted) {
  testing::TempDir root;
  int reads = 0;
  LoadRestrictions restrictions = ReadLoadRestrictions(root.Join("proc"), root.Join("sys"),
                                                       [&]() -> absl::StatusOr<std::string> {
                                                         ++reads;
                                                         return "none [integrity] confidentiality";
                                                       });
  EXPECT_EQ(restrictions.lockdown, "integrity");
  EXPECT_EQ(reads, 1);
  root.WriteFile("sys/kernel/security/lockdown", "[none] integrity confidentiality\n");
  restrictions = ReadLoadRestrictions(root.Join("proc"), root.Join("sys"),
                                      [&]() -> absl::StatusOr<std::string> {
                                        ++reads;
                                        return "none [integrity] confidentiality";
                                      });
  EXPECT_EQ(restrictions.lockdown, "none") << "the mounted file wins";
  EXPECT_EQ(reads, 1) << "nothing is mounted when the file is there";
}

// The real private mount; the VM e2e suite (lockdown_in_pod) covers it where it is allowed.
TEST(ReadLockdownFromPrivateSecurityfs, ReadsTheModesOrSaysWhyNot) {
  absl::StatusOr<std::string> modes = ReadLockdownFromPrivateSecurityfs();
  if (!modes.ok()) GTEST_SKIP() << "no private securityfs here: " << modes.status();
  // "none [integrity] confidentiality": the active mode in brackets, whichever it is here.
  EXPECT_NE(modes->find('['), std::string::npos) << *modes;
  EXPECT_NE(modes->find("integrity"), std::string::npos) << *modes;
}

TEST(ReadLoadRestrictions, FallsBackToTheKernelCommandLineWithoutSecurityfs) {
  testing::TempDir root;
  root.WriteFile("proc/cmdline",
                 "BOOT_IMAGE=/vmlinuz root=/dev/vda lockdown=confidentiality quiet\n");
  EXPECT_EQ(ReadLoadRestrictions(root.Join("proc"), root.Join("sys"), NoSecurityfs).lockdown,
            "confidentiality");
}

TEST(InsertFailure, PermissionWithCapSysModuleAndNothingKnownSuspectsLockdown) {
  LoadRestrictions restrictions;
  restrictions.cap_sys_module = false;
  EXPECT_NE(Failure(EPERM, restrictions).message().find("lacks CAP_SYS_MODULE"), std::string::npos);
  restrictions.cap_sys_module = true;
  const absl::Status status = Failure(EPERM, restrictions);
  EXPECT_EQ(status.message().find("lacks CAP_SYS_MODULE"), std::string::npos) << status;
  EXPECT_NE(status.message().find("kernel lockdown"), std::string::npos) << status;
  EXPECT_NE(status.message().find("could not be read"), std::string::npos) << status;
}

TEST(CheckVermagic, RefusesAnotherKernelNamingBoth) {
  EXPECT_TRUE(CheckVermagic(kModule, "6.1.0-56-amd64").ok());
  const absl::Status status = CheckVermagic(kModule, "6.1.0-57-amd64");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("built for kernel 6.1.0-56-amd64"), std::string::npos) << status;
  EXPECT_NE(status.message().find("runs kernel 6.1.0-57-amd64"), std::string::npos) << status;
  ModuleFile no_vermagic = kModule;
  no_vermagic.vermagic.clear();
  EXPECT_NE(CheckVermagic(no_vermagic, "6.1.0-56-amd64").message().find("has no vermagic"),
            std::string::npos);
}

}  // namespace
}  // namespace kmm::loader
