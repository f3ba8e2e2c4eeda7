#include "operator/kube/kube_client.h"

#include "common/status.h"

namespace kmm::kube {

absl::StatusOr<ObjectList> ListAll(KubeClient& client, const Resource& resource,
                                   std::string_view ns, ListOptions options) {
  ObjectList all;
  do {
    ASSIGN_OR_RETURN(ObjectList page, client.List(resource, ns, options));
    all.items.insert(all.items.end(), std::make_move_iterator(page.items.begin()),
                     std::make_move_iterator(page.items.end()));
    // The list's resourceVersion is the first page's: the snapshot every page belongs to.
    if (all.resource_version.empty()) all.resource_version = page.resource_version;
    options.continue_token = page.continue_token;
  } while (!options.continue_token.empty());
  return all;
}

std::string_view WatchEventTypeName(WatchEvent::Type type) {
  switch (type) {
    case WatchEvent::Type::kAdded:
      return "ADDED";
    case WatchEvent::Type::kModified:
      return "MODIFIED";
    case WatchEvent::Type::kDeleted:
      return "DELETED";
    case WatchEvent::Type::kBookmark:
      return "BOOKMARK";
    case WatchEvent::Type::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

}  // namespace kmm::kube
