#include "operator/kube/api_error.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::kube {
namespace {

using ::testing::HasSubstr;

TEST(ApiErrorTest, KeepsCodeReasonAndTheServersMessage) {
  absl::Status status = ApiErrorFromResponse(
      404,
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"nodes \"n1\" not found","reason":"NotFound","code":404})",
      std::nullopt);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("nodes \"n1\" not found"));
  EXPECT_TRUE(IsApiNotFound(status));
  std::optional<ApiErrorDetails> details = ApiErrorDetailsOf(status);
  ASSERT_TRUE(details.has_value());
  EXPECT_EQ(details->http_code, 404);
  EXPECT_EQ(details->reason, "NotFound");
}

TEST(ApiErrorTest, TellsAlreadyExistsFromConflict) {
  absl::Status exists = ApiError(409, "AlreadyExists", "exists");
  absl::Status conflict = ApiError(409, "Conflict", "modified");
  EXPECT_TRUE(IsApiAlreadyExists(exists));
  EXPECT_FALSE(IsApiConflict(exists));
  EXPECT_TRUE(IsApiConflict(conflict));
  EXPECT_FALSE(IsApiAlreadyExists(conflict));
  EXPECT_EQ(exists.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(conflict.code(), absl::StatusCode::kAborted);
}

TEST(ApiErrorTest, MapsEachHttpCode) {
  EXPECT_TRUE(IsApiGone(ApiError(410, "Expired", "too old")));
  EXPECT_TRUE(IsApiInvalid(ApiError(422, "Invalid", "bad")));
  EXPECT_TRUE(IsApiForbidden(ApiError(403, "Forbidden", "no")));
  EXPECT_EQ(ApiError(401, "Unauthorized", "who").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ApiError(503, "ServiceUnavailable", "busy").code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(IsApiNotFound(absl::NotFoundError("a local file")));
}

TEST(ApiErrorTest, KeepsRetryAfter) {
  absl::Status status = ApiErrorFromResponse(
      429, R"({"kind":"Status","reason":"TooManyRequests","message":"slow down"})",
      absl::Seconds(3));
  EXPECT_TRUE(IsApiTooManyRequests(status));
  EXPECT_EQ(ApiErrorDetailsOf(status)->retry_after, absl::Seconds(3));
}

TEST(ApiErrorTest, ANonStatusBodyIsQuoted) {
  absl::Status status = ApiErrorFromResponse(502, "Bad Gateway\n", std::nullopt);
  EXPECT_THAT(std::string(status.message()), HasSubstr("Bad Gateway (HTTP 502)"));
}

}  // namespace
}  // namespace kmm::kube
