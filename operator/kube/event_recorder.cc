#include "operator/kube/event_recorder.h"

#include "common/status.h"
#include "fmt/format.h"
#include "operator/kube/api_error.h"
#include "spdlog/spdlog.h"

namespace kmm::kube {
namespace {

std::string FormatEventTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

}  // namespace

EventRecorder::EventRecorder(KubeClient& client, std::string component, std::string instance,
                             Clock& clock, size_t remembered_events)
    : client_(client),
      component_(std::move(component)),
      instance_(std::move(instance)),
      clock_(clock),
      capacity_(remembered_events) {}

void EventRecorder::Record(const nlohmann::json& object, EventType type, std::string_view reason,
                           std::string_view message) {
  const nlohmann::json metadata = object.value("metadata", nlohmann::json::object());
  const std::string object_name = metadata.value("name", "");
  const std::string object_namespace = metadata.value("namespace", "");
  const std::string uid = metadata.value("uid", "");
  const std::string kind = object.value("kind", "");
  const std::string type_name = type == EventType::kWarning ? "Warning" : "Normal";
  // Events about cluster-scoped objects (Nodes) live in "default", as the kubelet's do.
  const std::string event_namespace = object_namespace.empty() ? "default" : object_namespace;
  const std::string key = fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}", kind,
                                      object_namespace, object_name, uid, type_name, reason,
                                      message);
  const absl::Time now = clock_.Now();

  std::optional<Seen> previous;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = seen_.find(key); it != seen_.end()) {
      previous = it->second.first;
      order_.splice(order_.end(), order_, it->second.second);
    }
  }
  if (previous) {
    nlohmann::json patch = {{"count", previous->count + 1}, {"lastTimestamp", FormatEventTime(now)}};
    absl::StatusOr<nlohmann::json> patched =
        client_.MergePatch(resources::kEvents, previous->ns, previous->name, patch);
    if (patched.ok()) {
      absl::MutexLock lock(&mu_);
      if (auto it = seen_.find(key); it != seen_.end()) it->second.first.count += 1;
      ++updated_;
      return;
    }
    if (!IsApiNotFound(patched.status())) {
      spdlog::warn("event {} on {} {}: {}", reason, kind, object_name, patched.status().message());
      return;
    }
    // The Event expired (the API server keeps them an hour); create a fresh one below.
  }

  Seen seen{event_namespace,
            fmt::format("{}.{:x}", object_name.empty() ? "kmm" : object_name,
                        absl::ToUnixNanos(now)),
            1};
  nlohmann::json involved = {{"kind", kind}, {"name", object_name}};
  if (object.contains("apiVersion")) involved["apiVersion"] = object["apiVersion"];
  if (!object_namespace.empty()) involved["namespace"] = object_namespace;
  if (!uid.empty()) involved["uid"] = uid;
  nlohmann::json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"name", seen.name}, {"namespace", event_namespace}}},
      {"involvedObject", involved},
      {"reason", reason},
      {"message", message},
      {"type", type_name},
      {"source", {{"component", component_}}},
      {"reportingComponent", component_},
      {"reportingInstance", instance_},
      {"firstTimestamp", FormatEventTime(now)},
      {"lastTimestamp", FormatEventTime(now)},
      {"count", 1},
  };
  absl::StatusOr<nlohmann::json> created = client_.Create(resources::kEvents, event_namespace, event);
  if (!created.ok()) {
    spdlog::warn("event {} on {} {}: {}", reason, kind, object_name, created.status().message());
    return;
  }
  absl::MutexLock lock(&mu_);
  ++created_;
  if (auto it = seen_.find(key); it != seen_.end()) {
    it->second.first = seen;
    return;
  }
  order_.push_back(key);
  seen_.emplace(key, std::make_pair(seen, std::prev(order_.end())));
  while (seen_.size() > capacity_) {
    seen_.erase(order_.front());
    order_.pop_front();
  }
}

uint64_t EventRecorder::created() const {
  absl::MutexLock lock(&mu_);
  return created_;
}

uint64_t EventRecorder::updated() const {
  absl::MutexLock lock(&mu_);
  return updated_;
}

}  // namespace kmm::kube
