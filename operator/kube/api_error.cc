#include "operator/kube/api_error.h"

#include "absl/strings/cord.h"
#include "common/status.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace kmm::kube {
namespace {

constexpr char kPayloadUrl[] = "kmm.sigs.x-k8s.io/api-error";

absl::StatusCode CodeFor(int http_code, std::string_view reason) {
  switch (http_code) {
    case 400:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists
                                       : absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kOutOfRange;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return http_code >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
  }
}

}  // namespace

absl::Status ApiError(int http_code, std::string_view reason, std::string_view message,
                      std::optional<absl::Duration> retry_after) {
  absl::Status status(CodeFor(http_code, reason),
                      ToAbsl(fmt::format("API server: {} (HTTP {}{}{})", message, http_code,
                                         reason.empty() ? "" : ", ", reason)));
  nlohmann::json details = {{"code", http_code}, {"reason", reason}};
  if (retry_after) details["retryAfterSeconds"] = absl::ToDoubleSeconds(*retry_after);
  status.SetPayload(kPayloadUrl, absl::Cord(details.dump()));
  return status;
}

absl::Status ApiErrorFromResponse(int http_code, std::string_view body,
                                  std::optional<absl::Duration> retry_after) {
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.value("kind", "") == "Status") {
    std::string reason = parsed.value("reason", "");
    std::string message = parsed.value("message", "");
    if (message.empty()) message = reason.empty() ? "request failed" : reason;
    return ApiError(http_code, reason, message, retry_after);
  }
  std::string text(body.substr(0, 200));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return ApiError(http_code, "", text.empty() ? "request failed" : text, retry_after);
}

std::optional<ApiErrorDetails> ApiErrorDetailsOf(const absl::Status& status) {
  auto payload = status.GetPayload(kPayloadUrl);  // absl::optional in Debian's abseil
  if (!payload) return std::nullopt;
  nlohmann::json details =
      nlohmann::json::parse(std::string(*payload), nullptr, /*allow_exceptions=*/false);
  if (!details.is_object()) return std::nullopt;
  ApiErrorDetails result;
  result.http_code = details.value("code", 0);
  result.reason = details.value("reason", "");
  if (details.contains("retryAfterSeconds")) {
    result.retry_after = absl::Seconds(details["retryAfterSeconds"].get<double>());
  }
  return result;
}

namespace {
bool HasCode(const absl::Status& status, int http_code) {
  std::optional<ApiErrorDetails> details = ApiErrorDetailsOf(status);
  return details && details->http_code == http_code;
}
}  // namespace

bool IsApiNotFound(const absl::Status& status) { return HasCode(status, 404); }
bool IsApiAlreadyExists(const absl::Status& status) {
  return HasCode(status, 409) && status.code() == absl::StatusCode::kAlreadyExists;
}
bool IsApiConflict(const absl::Status& status) {
  return HasCode(status, 409) && status.code() != absl::StatusCode::kAlreadyExists;
}
bool IsApiGone(const absl::Status& status) { return HasCode(status, 410); }
bool IsApiInvalid(const absl::Status& status) { return HasCode(status, 422); }
bool IsApiForbidden(const absl::Status& status) { return HasCode(status, 403); }
bool IsApiTooManyRequests(const absl::Status& status) { return HasCode(status, 429); }

}  // namespace kmm::kube
