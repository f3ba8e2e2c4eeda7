// Which API collection a request addresses: group/version/resource (the plural), and whether
// objects live in namespaces. Works for built-in types and CRDs alike.
#ifndef KMM_OPERATOR_KUBE_RESOURCE_H_
#define KMM_OPERATOR_KUBE_RESOURCE_H_

#include <string>
#include <string_view>

namespace kmm::kube {

struct Resource {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural, lower case: "nodes", "modules"
  bool namespaced = true;
  std::string kind;  // "Node"; used in messages and when building objects

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
};

// URL paths: /api/v1/nodes, /apis/apps/v1/namespaces/NS/daemonsets/NAME/status.
// `ns` is ignored for cluster-scoped resources; an empty `ns` for a namespaced one means
// every namespace (lists and watches only).
std::string CollectionPath(const Resource& resource, std::string_view ns);
std::string ObjectPath(const Resource& resource, std::string_view ns, std::string_view name,
                       std::string_view subresource = "");

// The ones the operator uses.
namespace resources {
inline const Resource kNodes{"", "v1", "nodes", false, "Node"};
inline const Resource kPods{"", "v1", "pods", true, "Pod"};
inline const Resource kConfigMaps{"", "v1", "configmaps", true, "ConfigMap"};
inline const Resource kEvents{"", "v1", "events", true, "Event"};
inline const Resource kNamespaces{"", "v1", "namespaces", false, "Namespace"};
inline const Resource kSecrets{"", "v1", "secrets", true, "Secret"};
inline const Resource kDaemonSets{"apps", "v1", "daemonsets", true, "DaemonSet"};
inline const Resource kJobs{"batch", "v1", "jobs", true, "Job"};
inline const Resource kLeases{"coordination.k8s.io", "v1", "leases", true, "Lease"};
inline const Resource kCustomResourceDefinitions{
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", false, "CustomResourceDefinition"};
inline const Resource kModules{"kmm.sigs.x-k8s.io", "v1beta1", "modules", true, "Module"};
}  // namespace resources

// "namespace/name", or "name" for cluster-scoped objects: the key caches and queues use.
std::string ObjectKey(std::string_view ns, std::string_view name);

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_RESOURCE_H_
