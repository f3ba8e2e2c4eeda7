#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace kmm {
namespace {

TEST(ErrnoError, MapsCodeAndKeepsErrno) {
  const absl::Status status = ErrnoError(ENOENT, "open /opt/lib/modules/x/kmm_ci_a.ko");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "open /opt/lib/modules/x/kmm_ci_a.ko: No such file or directory");
  EXPECT_EQ(ErrnoOf(status), ENOENT);
  EXPECT_EQ(ErrnoError(EPERM, "init_module").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoError(EBUSY, "delete_module").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ErrnoError, StatusWithoutErrnoHasNone) {
  EXPECT_EQ(ErrnoOf(absl::InvalidArgumentError("bad")), std::nullopt);
  EXPECT_EQ(ErrnoOf(absl::OkStatus()), std::nullopt);
}

TEST(Annotate, PrefixesContextAndKeepsCodeAndErrno) {
  const absl::Status status = Annotate(ErrnoError(EBUSY, "remove kmm_ci_a"), "unload");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "unload: remove kmm_ci_a: Device or resource busy");
  EXPECT_EQ(ErrnoOf(status), EBUSY);
  EXPECT_TRUE(Annotate(absl::OkStatus(), "ignored").ok());
}

absl::Status FailWhenNegative(int value, int* calls) {
  ++*calls;
  if (value < 0) return absl::InvalidArgumentError("negative");
  return absl::OkStatus();
}

absl::StatusOr<int> Doubled(int value, int* calls) {
  ++*calls;
  if (value < 0) return absl::OutOfRangeError("negative");
  return value * 2;
}

absl::Status ReturnIfErrorUser(int value, int* calls, bool* reached_end) {
  RETURN_IF_ERROR(FailWhenNegative(value, calls));
  RETURN_IF_ERROR(Doubled(value, calls));  // a StatusOr works too
  *reached_end = true;
  return absl::OkStatus();
}

TEST(ReturnIfError, ReturnsTheErrorAndEvaluatesOnce) {
  int calls = 0;
  bool reached_end = false;
  const absl::Status status = ReturnIfErrorUser(-1, &calls, &reached_end);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(reached_end);
}

TEST(ReturnIfError, ContinuesOnSuccess) {
  int calls = 0;
  bool reached_end = false;
  EXPECT_TRUE(ReturnIfErrorUser(3, &calls, &reached_end).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(reached_end);
}

absl::StatusOr<int> AssignOrReturnUser(int value, int* calls) {
  ASSIGN_OR_RETURN(int doubled, Doubled(value, calls));
  ASSIGN_OR_RETURN(const int quadrupled, Doubled(doubled, calls));
  return quadrupled + 1;
}

TEST(AssignOrReturn, AssignsValueAndEvaluatesOnce) {
  int calls = 0;
  const absl::StatusOr<int> result = AssignOrReturnUser(5, &calls);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 21);
  EXPECT_EQ(calls, 2);
}

TEST(AssignOrReturn, ReturnsTheErrorUnchanged) {
  int calls = 0;
  const absl::StatusOr<int> result = AssignOrReturnUser(-5, &calls);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(result.status().message(), "negative");
  EXPECT_EQ(calls, 1);
}

absl::StatusOr<std::unique_ptr<std::string>> MakeOwned(bool ok) {
  if (!ok) return absl::InternalError("no");
  return std::make_unique<std::string>("moved");
}

absl::StatusOr<std::string> MoveOnlyUser(bool ok) {
  ASSIGN_OR_RETURN(std::unique_ptr<std::string> owned, MakeOwned(ok));
  return *owned;
}

TEST(AssignOrReturn, WorksWithMoveOnlyValues) {
  EXPECT_EQ(*MoveOnlyUser(true), "moved");
  EXPECT_EQ(MoveOnlyUser(false).status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace kmm
