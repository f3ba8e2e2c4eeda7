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
  EXPECT_NE(status.message().find("must be signed"), std::string::npos) << status;
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

TEST(ReadLoadRestrictions, ReadsProcAndSys) {
  testing::TempDir root;
  LoadRestrictions none = ReadLoadRestrictions(root.Join("proc"), root.Join("sys"));
  EXPECT_FALSE(none.modules_disabled);
  EXPECT_FALSE(none.sig_enforce);
  EXPECT_TRUE(none.lockdown.empty());
  root.WriteFile("proc/sys/kernel/modules_disabled", "1\n");
  root.WriteFile("proc/sys/kernel/loadpin/enforce", "1\n");
  root.WriteFile("sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
  root.WriteFile("sys/module/module/parameters/sig_enforce", "Y\n");
  LoadRestrictions all = ReadLoadRestrictions(root.Join("proc"), root.Join("sys"));
  EXPECT_TRUE(all.modules_disabled);
  EXPECT_TRUE(all.loadpin_enforce);
  EXPECT_EQ(all.lockdown, "integrity");
  EXPECT_TRUE(all.sig_enforce);
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
