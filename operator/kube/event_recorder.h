// Records Kubernetes Events (core/v1) about objects, e.g. "ModuleLoaded" on a Node or
// "NoKernelMapping" on a Module, so `kubectl describe` tells users what the operator did.
// A repeat of the same event (same object, type, reason and message) bumps the existing
// Event's count and lastTimestamp instead of creating another object. Thread-safe;
// failures are logged, never returned: events are informational.
#ifndef KMM_OPERATOR_KUBE_EVENT_RECORDER_H_
#define KMM_OPERATOR_KUBE_EVENT_RECORDER_H_

#include <cstdint>
#include <list>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "nlohmann/json.hpp"
#include "operator/kube/kube_client.h"

namespace kmm::kube {

enum class EventType { kNormal, kWarning };

class EventRecorder {
 public:
  // `component` is the reporting controller ("kmm-operator"); `instance` tells replicas
  // apart (the pod name).
  EventRecorder(KubeClient& client, std::string component, std::string instance,
                Clock& clock = RealClock(), size_t remembered_events = 4096);

  // `object` is the involved object as the API returns it (kind, apiVersion, metadata).
  void Record(const nlohmann::json& object, EventType type, std::string_view reason,
              std::string_view message);

  uint64_t created() const;  // Events created (not counting count bumps)
  uint64_t updated() const;  // count bumps

 private:
  struct Seen {
    std::string ns;
    std::string name;  // of the Event object
    int64_t count = 0;
  };

  KubeClient& client_;
  const std::string component_;
  const std::string instance_;
  Clock& clock_;
  const size_t capacity_;

  mutable absl::Mutex mu_;
  // Least recently recorded first, so the oldest is forgotten when full.
  std::list<std::string> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::pair<Seen, std::list<std::string>::iterator>> seen_
      ABSL_GUARDED_BY(mu_);
  uint64_t created_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t updated_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_EVENT_RECORDER_H_
