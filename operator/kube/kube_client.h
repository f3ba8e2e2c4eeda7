// KubeClient: the operator's one seam to the Kubernetes API (docs/design.md §7.4). Objects are
// plain JSON as the API server sends them; the resource says where they live. The real
// implementation is CurlKubeClient (curl_kube_client.h); tests of logic above it use a fake,
// tests of this layer use a real kube-apiserver.
#ifndef KMM_OPERATOR_KUBE_KUBE_CLIENT_H_
#define KMM_OPERATOR_KUBE_KUBE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "operator/kube/cancellation.h"
#include "operator/kube/resource.h"

namespace kmm::kube {

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;           // page size; 0: everything in one response
  std::string continue_token;  // from the previous page
  std::string resource_version;
};

struct ObjectList {
  std::vector<nlohmann::json> items;
  std::string resource_version;  // the list's, to start a watch from
  std::string continue_token;    // non-empty: more pages
};

struct DeleteOptions {
  std::string propagation_policy;  // "", "Foreground", "Background", "Orphan"
  std::optional<std::string> precondition_uid;
  std::optional<std::string> precondition_resource_version;
  std::optional<int64_t> grace_period_seconds;
};

struct ApplyOptions {
  std::string field_manager;  // required by the API server for server-side apply
  bool force = false;         // take ownership of fields another manager set
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;  // continue after this version; empty: from "now"
  bool allow_bookmarks = true;
  int64_t timeout_seconds = 0;  // ask the server to end the watch after this long; 0: its default
};

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type;
  nlohmann::json object;  // for kError, the metav1.Status the server sent
};

// Called for every event in order; return false to end the watch.
using WatchCallback = std::function<bool(WatchEvent&&)>;

class KubeClient {
 public:
  virtual ~KubeClient() = default;

  virtual absl::StatusOr<nlohmann::json> Get(const Resource& resource, std::string_view ns,
                                             std::string_view name) = 0;
  // One page; see ListAll for every page.
  virtual absl::StatusOr<ObjectList> List(const Resource& resource, std::string_view ns,
                                          const ListOptions& options) = 0;
  virtual absl::StatusOr<nlohmann::json> Create(const Resource& resource, std::string_view ns,
                                                const nlohmann::json& object) = 0;
  // PUT of the whole object; metadata.resourceVersion, when set, makes it conditional
  // (a Conflict error when the object changed meanwhile). `subresource` "status" writes status.
  virtual absl::StatusOr<nlohmann::json> Update(const Resource& resource, std::string_view ns,
                                                const nlohmann::json& object,
                                                std::string_view subresource = "") = 0;
  virtual absl::Status Delete(const Resource& resource, std::string_view ns, std::string_view name,
                              const DeleteOptions& options = {}) = 0;
  // RFC 7386 JSON merge patch.
  virtual absl::StatusOr<nlohmann::json> MergePatch(const Resource& resource, std::string_view ns,
                                                    std::string_view name,
                                                    const nlohmann::json& patch,
                                                    std::string_view subresource = "") = 0;
  // Server-side apply of the fields in `object` (which names itself).
  virtual absl::StatusOr<nlohmann::json> Apply(const Resource& resource, std::string_view ns,
                                               const nlohmann::json& object,
                                               const ApplyOptions& options,
                                               std::string_view subresource = "") = 0;
  // Streams events until the callback returns false (OK), the server ends the watch (OK),
  // `cancel` fires (Cancelled), or the connection fails (Unavailable). An ERROR event is
  // passed to the callback like any other.
  virtual absl::Status Watch(const Resource& resource, std::string_view ns,
                             const WatchOptions& options, const WatchCallback& on_event,
                             const Cancellation& cancel) = 0;
};

// Every page of a list, following `continue`; `options.limit` sets the page size.
absl::StatusOr<ObjectList> ListAll(KubeClient& client, const Resource& resource,
                                   std::string_view ns, ListOptions options);

std::string_view WatchEventTypeName(WatchEvent::Type type);

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_KUBE_CLIENT_H_
