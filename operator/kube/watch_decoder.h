// Decodes the API server's watch stream: a sequence of JSON objects
// {"type": "ADDED", "object": {...}}, as they arrive in arbitrary chunks from the network.
#ifndef KMM_OPERATOR_KUBE_WATCH_DECODER_H_
#define KMM_OPERATOR_KUBE_WATCH_DECODER_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "operator/kube/kube_client.h"

namespace kmm::kube {

// One event from its JSON text.
absl::StatusOr<WatchEvent> ParseWatchEvent(std::string_view text);

// Splits the byte stream into whole JSON objects, whatever the chunking: an object may end in
// the middle of a chunk or span many chunks, with or without newlines between objects.
// Not thread-safe; one per stream.
class WatchStreamDecoder {
 public:
  // Appends `bytes` and hands every completed event to `on_event`, in order. Stops early
  // (returning OK with `*stopped` set) when the callback returns false. A malformed event is
  // an error; the stream should then be dropped and re-established.
  absl::Status Feed(std::string_view bytes, const WatchCallback& on_event, bool* stopped);

  // Bytes of an event not yet complete.
  size_t pending_bytes() const { return buffer_.size(); }

 private:
  std::string buffer_;
  size_t scanned_ = 0;  // buffer_[0, scanned_) has been scanned, with the state below
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_WATCH_DECODER_H_
