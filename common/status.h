// Status helpers shared by every kmm component: errno-carrying errors and the
// RETURN_IF_ERROR / ASSIGN_OR_RETURN macros. Errors are absl::Status values, never
// exceptions, across component boundaries (docs/design.md §7.2).
#ifndef KMM_COMMON_STATUS_H_
#define KMM_COMMON_STATUS_H_

#include <optional>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fmt/format.h"

namespace kmm {

// Debian's abseil is built with its own string_view type (not std::string_view); these
// convert at the boundary. Our own interfaces use std::string_view.
inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view FromAbsl(absl::string_view s) { return {s.data(), s.size()}; }

// A Status for a failed system or library call: the code follows the errno (ENOENT is
// NotFound, EPERM is PermissionDenied, ...), the message is `message` followed by
// strerror, and the errno itself is kept so callers can branch on it (ErrnoOf).
absl::Status ErrnoError(int errnum, std::string_view message);

// `status` with `errnum` attached, so ErrnoOf finds it (for errors whose message we write).
absl::Status WithErrno(absl::Status status, int errnum);

// The errno an ErrnoError carried, if any; survives Annotate.
std::optional<int> ErrnoOf(const absl::Status& status);

// Prefixes `context` to the message ("context: message") and keeps code and payloads.
absl::Status Annotate(const absl::Status& status, std::string_view context);

namespace status_internal {
inline const absl::Status& AsStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}
}  // namespace status_internal

}  // namespace kmm

// Lets fmt and spdlog print an absl::string_view (e.g. status.message()) and a Status.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(kmm::FromAbsl(s), ctx);
  }
};
template <>
struct fmt::formatter<absl::Status> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const absl::Status& status, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(status.ToString(), ctx);
  }
};

#define KMM_STATUS_CONCAT_INNER_(a, b) a##b
#define KMM_STATUS_CONCAT_(a, b) KMM_STATUS_CONCAT_INNER_(a, b)

// Returns the Status of `expr` (a Status or StatusOr) from the enclosing function when it
// is not OK. `expr` is evaluated exactly once.
#define RETURN_IF_ERROR(expr)                                                               \
  do {                                                                                      \
    const auto& kmm_status_or_ = (expr);                                                    \
    if (const absl::Status& kmm_status_ = ::kmm::status_internal::AsStatus(kmm_status_or_); \
        !kmm_status_.ok()) {                                                                \
      return kmm_status_;                                                                   \
    }                                                                                       \
  } while (false)

// `ASSIGN_OR_RETURN(lhs, expr)`: evaluates the StatusOr `expr` exactly once; on error
// returns its Status, otherwise moves the value into `lhs` (which may declare a variable,
// e.g. `ASSIGN_OR_RETURN(auto config, ParseConfig(text))`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  KMM_ASSIGN_OR_RETURN_IMPL_(KMM_STATUS_CONCAT_(kmm_status_or_, __LINE__), lhs, expr)

#define KMM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) {                                 \
    return std::move(tmp).status();                \
  }                                                \
  lhs = std::move(tmp).value()  // NOLINT(bugprone-macro-parentheses): lhs may declare

#endif  // KMM_COMMON_STATUS_H_
