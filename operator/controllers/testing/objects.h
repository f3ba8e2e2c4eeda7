// Objects the controller tests share.
#ifndef KMM_OPERATOR_CONTROLLERS_TESTING_OBJECTS_H_
#define KMM_OPERATOR_CONTROLLERS_TESTING_OBJECTS_H_

#include "nlohmann/json.hpp"
#include "operator/desired/labels.h"

namespace kmm::controllers::testing {

using nlohmann::json;

// Module ns/m (uid u1, generation 1, our finalizer): nodes labelled pool=a, kernel 6.1.0 mapped
// to img:v1; `spec_overrides` is merge-patched into its spec.
inline json Module(json spec_overrides = json::object()) {
  json module = {
      {"apiVersion", "kmm.sigs.x-k8s.io/v1beta1"},
      {"kind", "Module"},
      {"metadata",
       {{"name", "m"},
        {"namespace", "ns"},
        {"uid", "u1"},
        {"generation", 1},
        {"finalizers", {desired::kModuleFinalizer}}}},
      {"spec",
       {{"selector", {{"pool", "a"}}},
        {"moduleLoader",
         {{"container",
           {{"modprobe", {{"moduleName", "m"}}},
            {"kernelMappings", {{{"literal", "6.1.0"}, {"containerImage", "img:v1"}}}}}}}}}}};
  module["spec"].merge_patch(spec_overrides);
  return module;
}

}  // namespace kmm::controllers::testing

#endif  // KMM_OPERATOR_CONTROLLERS_TESTING_OBJECTS_H_
