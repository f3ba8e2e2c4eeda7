// Informer: keeps a local cache of one kind of object (optionally narrowed by namespace and
// selectors) in sync with the API server by list+watch, and tells handlers what changed.
// Watches continue from the last resourceVersion; a 410 Gone (the version was compacted away)
// relists and reconciles the cache with the fresh list, so no change is lost; any other
// stream error reconnects with backoff. Run() blocks; every other method is thread-safe.
#ifndef KMM_OPERATOR_KUBE_INFORMER_H_
#define KMM_OPERATOR_KUBE_INFORMER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "operator/kube/cancellation.h"
#include "operator/kube/kube_client.h"
#include "operator/kube/metrics.h"

namespace kmm::kube {

// Cached objects are shared and never modified once stored.
using ObjectPtr = std::shared_ptr<const nlohmann::json>;

// The cache key of an object: "namespace/name", or "name" when cluster-scoped.
std::string KeyOf(const nlohmann::json& object);

// Notified in the informer's thread, in order, after the cache has the change. Handlers
// should be quick (enqueue a key) and must not block on the informer.
class ResourceEventHandler {
 public:
  virtual ~ResourceEventHandler() = default;
  virtual void OnAdd(const ObjectPtr& object) = 0;
  virtual void OnUpdate(const ObjectPtr& old_object, const ObjectPtr& new_object) = 0;
  virtual void OnDelete(const ObjectPtr& last_known) = 0;
};

// A handler made of functions (any may be empty).
class FunctionEventHandler final : public ResourceEventHandler {
 public:
  std::function<void(const ObjectPtr&)> on_add;
  std::function<void(const ObjectPtr&, const ObjectPtr&)> on_update;
  std::function<void(const ObjectPtr&)> on_delete;

  void OnAdd(const ObjectPtr& object) override {
    if (on_add) on_add(object);
  }
  void OnUpdate(const ObjectPtr& old_object, const ObjectPtr& new_object) override {
    if (on_update) on_update(old_object, new_object);
  }
  void OnDelete(const ObjectPtr& last_known) override {
    if (on_delete) on_delete(last_known);
  }
};

struct InformerOptions {
  Resource resource;
  std::string ns;  // empty: every namespace
  std::string label_selector;
  std::string field_selector;
  // Applied to every object before it is cached (e.g. keep only labels and status fields
  // the controller reads). Must keep metadata.name/namespace/resourceVersion.
  std::function<nlohmann::json(nlohmann::json)> transform;
  // Optional index: each (transformed) object is also found under the value this returns
  // (empty: not indexed), e.g. "namespace/owner" to read one owner's objects without
  // scanning the whole cache on every reconcile.
  std::function<std::string(const nlohmann::json&)> index;
  int64_t page_size = 500;
  // Each watch asks the server to end it after a random time in [watch_timeout,
  // 2*watch_timeout), so connections are refreshed without a thundering herd.
  absl::Duration watch_timeout = absl::Minutes(5);
  absl::Duration initial_backoff = absl::Milliseconds(800);
  absl::Duration max_backoff = absl::Seconds(30);
  // Counts watches that had to be restarted (an error, or a relist after 410); may be null.
  Counter* watch_restarts = nullptr;
};

class Informer {
 public:
  struct Stats {
    uint64_t lists = 0;  // full lists (the first, and one after every 410)
    uint64_t relists_after_gone = 0;
    uint64_t watches = 0;       // watch requests started
    uint64_t watch_errors = 0;  // watches that ended in an error and were retried
    uint64_t events = 0;        // watch events applied to the cache
  };

  Informer(KubeClient& client, InformerOptions options);
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Handlers must be added before Run().
  void AddEventHandler(ResourceEventHandler* handler);

  // Lists, then watches until `cancel` fires. Errors are logged and retried, never returned.
  void Run(const Cancellation& cancel);

  // True once the first list is in the cache.
  bool HasSynced() const { return synced_.load(std::memory_order_acquire); }
  // Waits until synced or `cancel` fires or `timeout` passes; returns HasSynced().
  bool WaitForSync(const Cancellation& cancel, absl::Duration timeout) const;

  // Whether Run is alive: it runs, and its loop made progress (a list, a watch started or an
  // event) within `silence` before `now`. Retrying with backoff is alive; a Run that
  // returned, or one stuck on a connection that never ends, is not. The message says which.
  absl::Status Liveness(absl::Time now, absl::Duration silence) const;
  // The longest a live informer goes without progress: a watch lasts at most twice
  // watch_timeout, then a backoff, then the next one starts.
  absl::Duration MaxSilence() const { return 2 * options_.watch_timeout + options_.max_backoff; }

  ObjectPtr Get(std::string_view key) const;
  std::vector<ObjectPtr> List() const;
  // The objects whose index value (InformerOptions::index) is `value`, in no order.
  std::vector<ObjectPtr> ListIndexed(std::string_view value) const;
  size_t Size() const;
  std::string resource_version() const;
  Stats stats() const;
  const InformerOptions& options() const { return options_; }

 private:
  // Lists every page, replaces the cache and tells handlers the difference.
  absl::Status ListAndReplace();
  // Applies one watch event; sets *gone on a 410 ERROR event. Returns false to end the watch.
  bool ApplyEvent(WatchEvent&& event, bool* gone, absl::Status* error);
  ObjectPtr Prepare(nlohmann::json object) const;
  std::string IndexOf(const nlohmann::json& object) const;
  void Unindex(const std::string& key, const ObjectPtr& object) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Index(const std::string& key, const ObjectPtr& object) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetResourceVersion(const nlohmann::json& object);

  KubeClient& client_;
  const InformerOptions options_;
  std::vector<ResourceEventHandler*> handlers_;
  std::atomic<bool> synced_{false};
  std::atomic<bool> running_{false};
  std::atomic<int64_t> last_progress_ns_{0};  // Unix nanoseconds
  void Progressed() { last_progress_ns_.store(absl::ToUnixNanos(absl::Now())); }

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, ObjectPtr> cache_ ABSL_GUARDED_BY(mu_);
  // index value -> key -> object
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, ObjectPtr>> index_
      ABSL_GUARDED_BY(mu_);
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_INFORMER_H_
