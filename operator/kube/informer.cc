#include "operator/kube/informer.h"

#include <random>

#include "common/status.h"
#include "fmt/format.h"
#include "operator/kube/api_error.h"
#include "spdlog/spdlog.h"

namespace kmm::kube {
namespace {

const nlohmann::json& Metadata(const nlohmann::json& object) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  auto it = object.find("metadata");
  return it != object.end() && it->is_object() ? *it : kEmpty;
}

std::string ResourceVersionOf(const nlohmann::json& object) {
  return Metadata(object).value("resourceVersion", "");
}

}  // namespace

std::string KeyOf(const nlohmann::json& object) {
  const nlohmann::json& metadata = Metadata(object);
  return ObjectKey(metadata.value("namespace", ""), metadata.value("name", ""));
}

Informer::Informer(KubeClient& client, InformerOptions options)
    : client_(client), options_(std::move(options)) {}

void Informer::AddEventHandler(ResourceEventHandler* handler) { handlers_.push_back(handler); }

ObjectPtr Informer::Prepare(nlohmann::json object) const {
  if (options_.transform) object = options_.transform(std::move(object));
  return std::make_shared<const nlohmann::json>(std::move(object));
}

std::string Informer::IndexOf(const nlohmann::json& object) const {
  return options_.index ? options_.index(object) : std::string();
}

void Informer::Index(const std::string& key, const ObjectPtr& object) {
  if (std::string value = IndexOf(*object); !value.empty()) index_[value][key] = object;
}

void Informer::Unindex(const std::string& key, const ObjectPtr& object) {
  const std::string value = IndexOf(*object);
  if (value.empty()) return;
  auto it = index_.find(value);
  if (it == index_.end()) return;
  it->second.erase(key);
  if (it->second.empty()) index_.erase(it);
}

void Informer::SetResourceVersion(const nlohmann::json& object) {
  std::string version = ResourceVersionOf(object);
  if (version.empty()) return;
  absl::MutexLock lock(&mu_);
  resource_version_ = std::move(version);
}

absl::Status Informer::ListAndReplace() {
  ListOptions list_options;
  list_options.label_selector = options_.label_selector;
  list_options.field_selector = options_.field_selector;
  list_options.limit = options_.page_size;
  // Page by page, transforming each page before the next arrives: the full objects of one
  // page are all that is ever held at once (5,000 whole Nodes would be hundreds of MiB).
  std::vector<std::pair<std::string, ObjectPtr>> listed;  // in list order, for handlers
  absl::flat_hash_map<std::string, ObjectPtr> fresh;
  std::string list_version;
  do {
    ASSIGN_OR_RETURN(ObjectList page, client_.List(options_.resource, options_.ns, list_options));
    if (list_version.empty()) list_version = page.resource_version;  // the snapshot's version
    list_options.continue_token = std::move(page.continue_token);
    for (nlohmann::json& item : page.items) {
      std::string key = KeyOf(item);
      ObjectPtr object = Prepare(std::move(item));
      fresh.emplace(key, object);
      listed.emplace_back(std::move(key), std::move(object));
    }
  } while (!list_options.continue_token.empty());
  absl::flat_hash_map<std::string, ObjectPtr> previous;
  {
    absl::MutexLock lock(&mu_);
    previous.swap(cache_);
    cache_ = fresh;
    index_.clear();
    for (const auto& [key, object] : cache_) Index(key, object);
    resource_version_ = list_version;
    ++stats_.lists;
  }
  // Tell handlers the difference between what they last heard and the fresh list: this is
  // how changes made while the watch was down (and compacted away) still arrive.
  for (const auto& [key, object] : listed) {
    auto old = previous.find(key);
    if (old == previous.end()) {
      for (ResourceEventHandler* handler : handlers_) handler->OnAdd(object);
    } else if (ResourceVersionOf(*old->second) != ResourceVersionOf(*object)) {
      for (ResourceEventHandler* handler : handlers_) handler->OnUpdate(old->second, object);
    }
  }
  for (const auto& [key, object] : previous) {
    if (!fresh.contains(key)) {
      for (ResourceEventHandler* handler : handlers_) handler->OnDelete(object);
    }
  }
  synced_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

bool Informer::ApplyEvent(WatchEvent&& event, bool* gone, absl::Status* error) {
  Progressed();
  switch (event.type) {
    case WatchEvent::Type::kBookmark:
      SetResourceVersion(event.object);
      return true;
    case WatchEvent::Type::kError: {
      const int code = event.object.value("code", 0);
      if (code == 410) {
        *gone = true;
      } else {
        *error = absl::UnavailableError(
            fmt::format("watch of {}: error event: {}", options_.resource.resource,
                        event.object.value("message", event.object.dump())));
      }
      return false;
    }
    case WatchEvent::Type::kAdded:
    case WatchEvent::Type::kModified:
    case WatchEvent::Type::kDeleted:
      break;
  }
  std::string key = KeyOf(event.object);
  std::string version = ResourceVersionOf(event.object);
  ObjectPtr object = Prepare(std::move(event.object));
  ObjectPtr old;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) old = it->second;
    if (old != nullptr) Unindex(key, old);
    if (event.type == WatchEvent::Type::kDeleted) {
      cache_.erase(key);
    } else {
      cache_[key] = object;
      Index(key, object);
    }
    if (!version.empty()) resource_version_ = std::move(version);
    ++stats_.events;
  }
  for (ResourceEventHandler* handler : handlers_) {
    if (event.type == WatchEvent::Type::kDeleted) {
      handler->OnDelete(object);
    } else if (old == nullptr) {
      handler->OnAdd(object);
    } else {
      handler->OnUpdate(old, object);
    }
  }
  return true;
}

absl::Status Informer::Liveness(absl::Time now, absl::Duration silence) const {
  const std::string what = options_.resource.resource;
  if (!running_.load())
    return absl::UnavailableError(fmt::format("the {} informer is not running", what));
  const absl::Duration quiet = now - absl::FromUnixNanos(last_progress_ns_.load());
  if (quiet > silence) {
    return absl::UnavailableError(
        fmt::format("the {} informer made no progress for {}", what,
                    absl::FormatDuration(absl::Trunc(quiet, absl::Seconds(1)))));
  }
  return absl::OkStatus();
}

void Informer::Run(const Cancellation& cancel) {
  running_.store(true);
  Progressed();
  // Not running once Run returns, for whatever reason.
  struct Stopped {
    std::atomic<bool>& running;
    ~Stopped() { running.store(false); }
  } stopped{running_};
  std::mt19937_64 random(std::random_device{}());
  absl::Duration backoff = options_.initial_backoff;
  bool need_list = true;
  const std::string what =
      options_.resource.resource + (options_.ns.empty() ? "" : " in namespace " + options_.ns);
  while (!cancel.cancelled()) {
    Progressed();
    if (need_list) {
      if (absl::Status status = ListAndReplace(); !status.ok()) {
        spdlog::warn("informer: listing {} failed, retrying in {}: {}", what,
                     absl::FormatDuration(backoff), status.message());
        if (cancel.WaitFor(backoff)) break;
        backoff = std::min(backoff * 2, options_.max_backoff);
        continue;
      }
      need_list = false;
      spdlog::debug("informer: {} listed: {} objects at resourceVersion {}", what, Size(),
                    resource_version());
    }
    WatchOptions watch_options;
    watch_options.label_selector = options_.label_selector;
    watch_options.field_selector = options_.field_selector;
    watch_options.resource_version = resource_version();
    watch_options.allow_bookmarks = true;
    const int64_t base = absl::ToInt64Seconds(options_.watch_timeout);
    watch_options.timeout_seconds =
        base + static_cast<int64_t>(random() % static_cast<uint64_t>(std::max<int64_t>(base, 1)));
    {
      absl::MutexLock lock(&mu_);
      ++stats_.watches;
    }
    bool gone = false;
    absl::Status event_error;
    uint64_t events_before = stats().events;
    absl::Status status = client_.Watch(
        options_.resource, options_.ns, watch_options,
        [&](WatchEvent&& event) { return ApplyEvent(std::move(event), &gone, &event_error); },
        cancel);
    if (cancel.cancelled()) break;
    if (gone || IsApiGone(status)) {
      // Our resourceVersion is older than what the server keeps: relist at once.
      spdlog::info("informer: {}: resourceVersion {} is too old (410 Gone); relisting", what,
                   watch_options.resource_version);
      if (options_.watch_restarts != nullptr) options_.watch_restarts->Inc();
      absl::MutexLock lock(&mu_);
      ++stats_.relists_after_gone;
      need_list = true;
      continue;
    }
    if (status.ok() && event_error.ok()) {
      backoff = options_.initial_backoff;  // the server ended a healthy watch; resume
      continue;
    }
    if (!event_error.ok()) status = event_error;
    if (stats().events > events_before) backoff = options_.initial_backoff;
    if (options_.watch_restarts != nullptr) options_.watch_restarts->Inc();
    {
      absl::MutexLock lock(&mu_);
      ++stats_.watch_errors;
    }
    spdlog::warn("informer: watch of {} failed, resuming from resourceVersion {} in {}: {}", what,
                 resource_version(), absl::FormatDuration(backoff), status.message());
    if (cancel.WaitFor(backoff)) break;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool Informer::WaitForSync(const Cancellation& cancel, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (!HasSynced() && !cancel.cancelled() && absl::Now() < deadline) {
    cancel.WaitFor(absl::Milliseconds(10));
  }
  return HasSynced();
}

ObjectPtr Informer::Get(std::string_view key) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = cache_.find(ToAbsl(key));
  return it == cache_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Informer::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ObjectPtr> objects;
  objects.reserve(cache_.size());
  for (const auto& [key, object] : cache_) objects.push_back(object);
  return objects;
}

std::vector<ObjectPtr> Informer::ListIndexed(std::string_view value) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ObjectPtr> objects;
  auto it = index_.find(ToAbsl(value));
  if (it == index_.end()) return objects;
  objects.reserve(it->second.size());
  for (const auto& [key, object] : it->second) objects.push_back(object);
  return objects;
}

size_t Informer::Size() const {
  absl::ReaderMutexLock lock(&mu_);
  return cache_.size();
}

std::string Informer::resource_version() const {
  absl::ReaderMutexLock lock(&mu_);
  return resource_version_;
}

Informer::Stats Informer::stats() const {
  absl::ReaderMutexLock lock(&mu_);
  return stats_;
}

}  // namespace kmm::kube
