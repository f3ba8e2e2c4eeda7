#include "operator/kube/watch_decoder.h"

#include "common/status.h"
#include "fmt/format.h"

namespace kmm::kube {

absl::StatusOr<WatchEvent> ParseWatchEvent(std::string_view text) {
  nlohmann::json event = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!event.is_object()) {
    return absl::DataLossError(fmt::format("watch stream: not a JSON object: {}",
                                           text.substr(0, 120)));
  }
  auto type = event.find("type");
  auto object = event.find("object");
  if (type == event.end() || !type->is_string() || object == event.end() ||
      !object->is_object()) {
    return absl::DataLossError(fmt::format(
        "watch stream: event without a string \"type\" and an \"object\": {}",
        text.substr(0, 120)));
  }
  const std::string& name = type->get_ref<const std::string&>();
  WatchEvent result{WatchEvent::Type::kError, std::move(*object)};
  if (name == "ADDED") {
    result.type = WatchEvent::Type::kAdded;
  } else if (name == "MODIFIED") {
    result.type = WatchEvent::Type::kModified;
  } else if (name == "DELETED") {
    result.type = WatchEvent::Type::kDeleted;
  } else if (name == "BOOKMARK") {
    result.type = WatchEvent::Type::kBookmark;
  } else if (name != "ERROR") {
    return absl::DataLossError(fmt::format("watch stream: unknown event type \"{}\"", name));
  }
  return result;
}

absl::Status WatchStreamDecoder::Feed(std::string_view bytes, const WatchCallback& on_event,
                                      bool* stopped) {
  *stopped = false;
  buffer_.append(bytes);
  size_t object_start = 0;
  // Scan only new bytes, tracking nesting outside strings; an object ends when depth returns
  // to zero.
  for (size_t i = scanned_; i < buffer_.size(); ++i) {
    const char c = buffer_[i];
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      if (depth_ == 0) object_start = i;
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ < 0) return absl::DataLossError("watch stream: unbalanced JSON");
      if (depth_ == 0) {
        ASSIGN_OR_RETURN(WatchEvent event, ParseWatchEvent(std::string_view(buffer_).substr(
                                               object_start, i + 1 - object_start)));
        if (!on_event(std::move(event))) {
          buffer_.erase(0, i + 1);
          scanned_ = 0;
          *stopped = true;
          return absl::OkStatus();
        }
        object_start = i + 1;
      }
    } else if (depth_ == 0 && c != ' ' && c != '\n' && c != '\r' && c != '\t') {
      return absl::DataLossError(
          fmt::format("watch stream: unexpected '{}' between events", c));
    }
  }
  // Keep only the unfinished object.
  if (depth_ == 0) {
    buffer_.clear();
    scanned_ = 0;
  } else {
    buffer_.erase(0, object_start);
    scanned_ = buffer_.size();
  }
  return absl::OkStatus();
}

}  // namespace kmm::kube
