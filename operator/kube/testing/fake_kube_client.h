// An in-memory KubeClient for unit tests of logic above the client (leader election, event
// deduplication, informer bookkeeping). It keeps objects per resource with a global
// resourceVersion counter and enforces what that logic relies on: NotFound, AlreadyExists,
// Conflict on a stale resourceVersion. Watches replay a scripted list of events. Tests of the
// client itself run against a real kube-apiserver instead (docs/design.md §8).
#ifndef KMM_OPERATOR_KUBE_TESTING_FAKE_KUBE_CLIENT_H_
#define KMM_OPERATOR_KUBE_TESTING_FAKE_KUBE_CLIENT_H_

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "fmt/format.h"
#include "operator/kube/api_error.h"
#include "operator/kube/kube_client.h"

namespace kmm::kube::testing {

// Returns a failure injected with FailNext (fake-internal).
#define RETURN_IF_FAILING(expr)                        \
  do {                                                 \
    if (absl::Status s_ = (expr); !s_.ok()) return s_; \
  } while (false)

class FakeKubeClient final : public KubeClient {
 public:
  // A scripted watch: its events, then the status Watch returns.
  struct ScriptedWatch {
    std::vector<WatchEvent> events;
    absl::Status end = absl::OkStatus();
  };

  // The next request fails with `status` (once).
  void FailNext(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_next_.push_back(std::move(status));
  }
  // The next request `request` ("verb resource ns/name", as requests() lists them) fails with
  // `status` (once), whatever requests come before it.
  void FailOn(std::string request, absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_on_.emplace_back(std::move(request), std::move(status));
  }
  // The next watch request takes it, or with `resource` ("pods") the next watch of that one.
  void AddWatch(ScriptedWatch watch) { AddWatch("", std::move(watch)); }
  void AddWatch(std::string resource, ScriptedWatch watch) {
    absl::MutexLock lock(&mu_);
    watches_.emplace_back(std::move(resource), std::move(watch));
  }
  // Every request so far, as "verb resource ns/name".
  std::vector<std::string> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<WatchOptions> watch_requests() const {
    absl::MutexLock lock(&mu_);
    return watch_options_;
  }
  // Stores an object directly (no request recorded); returns it with its new version.
  nlohmann::json Put(const Resource& resource, nlohmann::json object) {
    absl::MutexLock lock(&mu_);
    object["metadata"]["resourceVersion"] = std::to_string(++version_);
    store_[resource.resource][KeyFor(object)] = object;
    return object;
  }

  absl::StatusOr<nlohmann::json> Get(const Resource& resource, std::string_view ns,
                                     std::string_view name) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_FAILING(Record("get", resource, ns, name));
    auto& objects = store_[resource.resource];
    auto it = objects.find(ObjectKey(resource.namespaced ? ns : "", name));
    if (it == objects.end()) return NotFound(resource, name);
    return it->second;
  }

  absl::StatusOr<ObjectList> List(const Resource& resource, std::string_view ns,
                                  const ListOptions& options) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_FAILING(Record("list", resource, ns, ""));
    ObjectList list;
    for (const auto& [key, object] : store_[resource.resource]) {
      if (ns.empty() || object["metadata"].value("namespace", "") == ns) {
        list.items.push_back(object);
      }
    }
    // Pages of `limit`, the continue token being the index of the next item.
    size_t start = options.continue_token.empty() ? 0 : std::stoul(options.continue_token);
    if (options.limit > 0) {
      size_t end = std::min(list.items.size(), start + static_cast<size_t>(options.limit));
      if (end < list.items.size()) list.continue_token = std::to_string(end);
      list.items =
          std::vector<nlohmann::json>(list.items.begin() + start, list.items.begin() + end);
    }
    list.resource_version = std::to_string(version_);
    return list;
  }

  absl::StatusOr<nlohmann::json> Create(const Resource& resource, std::string_view ns,
                                        const nlohmann::json& object) override {
    absl::MutexLock lock(&mu_);
    nlohmann::json stored = object;
    if (resource.namespaced) stored["metadata"]["namespace"] = std::string(ns);
    const std::string name = stored["metadata"].value("name", "");
    RETURN_IF_FAILING(Record("create", resource, ns, name));
    auto& objects = store_[resource.resource];
    const std::string key = KeyFor(stored);
    if (objects.contains(key)) {
      return ApiError(409, "AlreadyExists",
                      fmt::format("{} \"{}\" already exists", resource.resource, name));
    }
    stored["metadata"]["resourceVersion"] = std::to_string(++version_);
    objects[key] = stored;
    return stored;
  }

  absl::StatusOr<nlohmann::json> Update(const Resource& resource, std::string_view ns,
                                        const nlohmann::json& object,
                                        std::string_view /*subresource*/) override {
    absl::MutexLock lock(&mu_);
    const std::string name = object["metadata"].value("name", "");
    RETURN_IF_FAILING(Record("update", resource, ns, name));
    auto& objects = store_[resource.resource];
    auto it = objects.find(ObjectKey(resource.namespaced ? ns : "", name));
    if (it == objects.end()) return NotFound(resource, name);
    const std::string expected = object["metadata"].value("resourceVersion", "");
    if (!expected.empty() && expected != it->second["metadata"].value("resourceVersion", "")) {
      return ApiError(409, "Conflict",
                      fmt::format("Operation cannot be fulfilled on {} \"{}\": the object has "
                                  "been modified",
                                  resource.resource, name));
    }
    it->second = object;
    it->second["metadata"]["resourceVersion"] = std::to_string(++version_);
    return it->second;
  }

  absl::Status Delete(const Resource& resource, std::string_view ns, std::string_view name,
                      const DeleteOptions& /*options*/) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_FAILING(Record("delete", resource, ns, name));
    if (store_[resource.resource].erase(ObjectKey(resource.namespaced ? ns : "", name)) == 0) {
      return NotFound(resource, name);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<nlohmann::json> MergePatch(const Resource& resource, std::string_view ns,
                                            std::string_view name, const nlohmann::json& patch,
                                            std::string_view /*subresource*/) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_FAILING(Record("patch", resource, ns, name));
    auto& objects = store_[resource.resource];
    auto it = objects.find(ObjectKey(resource.namespaced ? ns : "", name));
    if (it == objects.end()) return NotFound(resource, name);
    it->second.merge_patch(patch);
    it->second["metadata"]["resourceVersion"] = std::to_string(++version_);
    return it->second;
  }

  absl::StatusOr<nlohmann::json> Apply(const Resource& resource, std::string_view ns,
                                       const nlohmann::json& object,
                                       const ApplyOptions& /*options*/,
                                       std::string_view /*subresource*/) override {
    absl::MutexLock lock(&mu_);
    const std::string name = object["metadata"].value("name", "");
    RETURN_IF_FAILING(Record("apply", resource, ns, name));
    nlohmann::json& stored =
        store_[resource.resource][ObjectKey(resource.namespaced ? ns : "", name)];
    if (stored.is_null()) stored = nlohmann::json::object();
    stored.merge_patch(object);
    stored["metadata"]["resourceVersion"] = std::to_string(++version_);
    return stored;
  }

  absl::Status Watch(const Resource& resource, std::string_view ns, const WatchOptions& options,
                     const WatchCallback& on_event, const Cancellation& cancel) override {
    ScriptedWatch watch;
    {
      absl::MutexLock lock(&mu_);
      RETURN_IF_FAILING(Record("watch", resource, ns, ""));
      watch_options_.push_back(options);
    }
    // Like an idle server until a scripted watch for this resource is added, or cancelled.
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto next = std::find_if(watches_.begin(), watches_.end(), [&](const auto& scripted) {
          return scripted.first.empty() || scripted.first == resource.resource;
        });
        if (next != watches_.end()) {
          watch = std::move(next->second);
          watches_.erase(next);
          break;
        }
      }
      if (cancel.WaitFor(absl::Milliseconds(5))) return absl::CancelledError("watch cancelled");
    }
    for (WatchEvent& event : watch.events) {
      if (!on_event(std::move(event))) return absl::OkStatus();
    }
    return watch.end;
  }

 private:
  absl::Status Record(std::string_view verb, const Resource& resource, std::string_view ns,
                      std::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    requests_.push_back(fmt::format("{} {} {}", verb, resource.resource, ObjectKey(ns, name)));
    auto failing = std::find_if(fail_on_.begin(), fail_on_.end(),
                                [&](const auto& each) { return each.first == requests_.back(); });
    if (failing != fail_on_.end()) {
      absl::Status status = std::move(failing->second);
      fail_on_.erase(failing);
      return status;
    }
    if (fail_next_.empty()) return absl::OkStatus();
    absl::Status status = std::move(fail_next_.front());
    fail_next_.pop_front();
    return status;
  }
  static std::string KeyFor(const nlohmann::json& object) {
    return ObjectKey(object["metadata"].value("namespace", ""),
                     object["metadata"].value("name", ""));
  }
  static absl::Status NotFound(const Resource& resource, std::string_view name) {
    return ApiError(404, "NotFound", fmt::format("{} \"{}\" not found", resource.resource, name));
  }

  mutable absl::Mutex mu_;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 100;
  std::map<std::string, std::map<std::string, nlohmann::json>> store_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Status> fail_next_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, absl::Status>> fail_on_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, ScriptedWatch>> watches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<WatchOptions> watch_options_ ABSL_GUARDED_BY(mu_);
};

#undef RETURN_IF_FAILING

}  // namespace kmm::kube::testing

#endif  // KMM_OPERATOR_KUBE_TESTING_FAKE_KUBE_CLIENT_H_
