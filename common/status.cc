#include "common/status.h"

#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "fmt/format.h"

namespace kmm {
namespace {
// Payload key under which ErrnoError stores the errno as decimal text.
constexpr std::string_view kErrnoPayload = "kmm.sigs.x-k8s.io/errno";
}  // namespace

absl::Status ErrnoError(int errnum, std::string_view message) {
  return WithErrno(absl::Status(absl::ErrnoToStatusCode(errnum),
                                fmt::format("{}: {}", message, std::strerror(errnum))),
                   errnum);
}

absl::Status WithErrno(absl::Status status, int errnum) {
  status.SetPayload(ToAbsl(kErrnoPayload), absl::Cord(std::to_string(errnum)));
  return status;
}

std::optional<int> ErrnoOf(const absl::Status& status) {
  const auto payload = status.GetPayload(ToAbsl(kErrnoPayload));
  int errnum = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &errnum)) {
    return std::nullopt;
  }
  return errnum;
}

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  absl::Status annotated(status.code(), fmt::format("{}: {}", context, status.message()));
  status.ForEachPayload(
      [&](absl::string_view key, const absl::Cord& value) { annotated.SetPayload(key, value); });
  return annotated;
}

}  // namespace kmm
