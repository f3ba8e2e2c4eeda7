// The reconciler tests' harness: a fake API with real informers over it, and the objects the
// tests build (nodes of kernel 6.1.0 labelled pool=a, loader pods).
#ifndef KMM_OPERATOR_CONTROLLERS_TESTING_HARNESS_H_
#define KMM_OPERATOR_CONTROLLERS_TESTING_HARNESS_H_

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "nlohmann/json.hpp"
#include "operator/controllers/caches.h"
#include "operator/controllers/module_reconciler.h"
#include "operator/desired/labels.h"
#include "operator/kube/testing/fake_kube_client.h"

namespace kmm::controllers::testing {

using nlohmann::json;

inline json Node(const std::string& name, bool ready_label) {
  json labels = {{"pool", "a"}, {std::string(desired::kKernelVersionLabel), "6.1.0"}};
  if (ready_label) labels[desired::ModuleReadyLabel("ns", "m")] = "";
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"status", {{"nodeInfo", {{"kernelVersion", "6.1.0"}}}}}};
}

inline json LoaderPod(const std::string& name, const std::string& node,
                      const std::string& template_hash, const std::string& kernel_hash) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name},
            {"namespace", "ns"},
            {"labels",
             {{desired::kModuleNameLabel, "m"},
              {desired::kComponentLabel, desired::kLoaderComponent},
              {desired::kKernelHashLabel, kernel_hash},
              {desired::kManagedByLabel, desired::kManagedByValue}}},
            {"annotations", {{desired::kTemplateHashAnnotation, template_hash}}}}},
          {"spec", {{"nodeName", node}}},
          {"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
}

// Runs the reconciler once over caches filled from `client`.
class Harness {
 public:
  explicit Harness(kube::testing::FakeKubeClient& client)
      : client_(client), caches_(client, {}, nullptr), events_(client, "kmm-operator", "test") {
    for (kube::Informer* informer : caches_.all()) {
      threads_.emplace_back([this, informer] { informer->Run(cancel_); });
    }
    for (kube::Informer* informer : caches_.all())
      informer->WaitForSync(cancel_, absl::Seconds(10));
  }
  ~Harness() {
    cancel_.Cancel();
    for (std::thread& thread : threads_) thread.join();
  }
  // A new reconciler each time (no memory of earlier runs), on `clock`.
  absl::StatusOr<kube::Result> Reconcile(Clock& clock = RealClock()) {
    ModuleReconciler reconciler(client_, caches_, events_, {}, clock);
    return reconciler.Reconcile("ns/m");
  }

 private:
  kube::testing::FakeKubeClient& client_;
  Caches caches_;
  kube::EventRecorder events_;
  kube::Cancellation cancel_;
  std::vector<std::thread> threads_;
};

// The requests after `from`, without the informers' list/watch.
inline std::vector<std::string> Writes(const kube::testing::FakeKubeClient& client) {
  std::vector<std::string> writes;
  for (const std::string& request : client.requests()) {
    if (request.rfind("list ", 0) != 0 && request.rfind("watch ", 0) != 0 &&
        request.rfind("get ", 0) != 0) {
      writes.push_back(request);
    }
  }
  return writes;
}

// The template hash the current spec gives, read from the DaemonSet the reconciler applies.
inline std::pair<std::string, std::string> CurrentHashes(kube::testing::FakeKubeClient& client) {
  absl::StatusOr<kube::ObjectList> list = client.List(kube::resources::kDaemonSets, "ns", {});
  const json& daemonset = list->items.at(0);
  return {
      daemonset["spec"]["template"]["metadata"]["annotations"]
               [std::string(desired::kTemplateHashAnnotation)],
      daemonset["spec"]["template"]["metadata"]["labels"][std::string(desired::kKernelHashLabel)]};
}

inline std::vector<std::string> PodDeletes(const kube::testing::FakeKubeClient& client) {
  std::vector<std::string> deletes;
  for (const std::string& write : Writes(client)) {
    if (write.rfind("delete pods", 0) == 0) deletes.push_back(write);
  }
  return deletes;
}

inline json NotReady(json pod, const std::string& created = "") {
  pod["status"]["conditions"] = {{{"type", "Ready"}, {"status", "False"}}};
  if (!created.empty()) pod["metadata"]["creationTimestamp"] = created;
  return pod;
}

}  // namespace kmm::controllers::testing

#endif  // KMM_OPERATOR_CONTROLLERS_TESTING_HARNESS_H_
