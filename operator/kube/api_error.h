// Errors from the API server as absl::Status values that keep what callers branch on: the
// HTTP code, the API server's `reason` (NotFound, AlreadyExists, Conflict, Invalid, Gone, ...)
// and Retry-After. The message is the API server's own, which names the object and field.
#ifndef KMM_OPERATOR_KUBE_API_ERROR_H_
#define KMM_OPERATOR_KUBE_API_ERROR_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace kmm::kube {

struct ApiErrorDetails {
  int http_code = 0;
  std::string reason;  // metav1.StatusReason, e.g. "Conflict"; may be empty
  std::optional<absl::Duration> retry_after;
};

// Builds the Status for an API error. The absl code follows the HTTP code (404 NotFound,
// 409 AlreadyExists or Aborted for a conflict, 410 OutOfRange, 422/400 InvalidArgument,
// 401 Unauthenticated, 403 PermissionDenied, 429 ResourceExhausted, 5xx Unavailable).
absl::Status ApiError(int http_code, std::string_view reason, std::string_view message,
                      std::optional<absl::Duration> retry_after = std::nullopt);

// Builds it from a response body: a metav1.Status object when the server sent one.
absl::Status ApiErrorFromResponse(int http_code, std::string_view body,
                                  std::optional<absl::Duration> retry_after);

// The details an ApiError carried; nullopt for other errors (e.g. a connection failure).
std::optional<ApiErrorDetails> ApiErrorDetailsOf(const absl::Status& status);

bool IsApiNotFound(const absl::Status& status);
bool IsApiAlreadyExists(const absl::Status& status);
bool IsApiConflict(const absl::Status& status);  // 409 with reason Conflict (stale resourceVersion)
bool IsApiGone(const absl::Status& status);      // 410: resourceVersion too old, relist
bool IsApiInvalid(const absl::Status& status);
bool IsApiForbidden(const absl::Status& status);
bool IsApiTooManyRequests(const absl::Status& status);

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_API_ERROR_H_
