#include "operator/desired/unload_pod.h"

#include "operator/desired/labels.h"

namespace kmm::desired {

using nlohmann::json;

std::string UnloadPodName(std::string_view loader_pod_name) {
  return std::string(loader_pod_name) + "-unload";
}

json UnloadPodFor(const json& loader_daemonset, std::string_view loader_pod_name,
                  std::string_view node) {
  const json& pod_template = loader_daemonset.at("spec").at("template");
  json labels = pod_template.at("metadata").at("labels");
  labels[std::string(kComponentLabel)] = kUnloaderComponent;
  json spec = pod_template.at("spec");
  // Pinned to the node whose module it unloads, whatever its labels and taints say now.
  spec.erase("nodeSelector");
  spec["nodeName"] = node;
  spec["tolerations"] = {{{"operator", "Exists"}}};
  spec["restartPolicy"] = "OnFailure";
  json& loader = spec.at("containers").at(0);
  loader["command"].at(1) = "unload";  // kmm-loader run ... -> kmm-loader unload ...
  loader.erase("readinessProbe");
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", UnloadPodName(loader_pod_name)},
        {"namespace", loader_daemonset.at("metadata").at("namespace")},
        {"labels", labels},
        {"ownerReferences", loader_daemonset.at("metadata").at("ownerReferences")}}},
      {"spec", spec},
  };
}

}  // namespace kmm::desired
