// What the operator keeps of the objects it watches: each trim keeps exactly what the
// reconcilers read, and the index finds a Module's objects.
#include "operator/controllers/caches.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/desired/labels.h"

namespace kmm::controllers {
namespace {

using nlohmann::json;

json LoaderPod() {
  return json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {
      "name": "m-loader-abc-x1", "namespace": "ns", "uid": "u", "resourceVersion": "7",
      "creationTimestamp": "2026-11-25T00:00:00Z",
      "labels": {"kmm.sigs.x-k8s.io/module": "m", "kmm.sigs.x-k8s.io/component": "loader",
                 "kmm.sigs.x-k8s.io/kernel-hash": "abc", "controller-revision-hash": "5d",
                 "pod-template-generation": "1"},
      "annotations": {"kmm.sigs.x-k8s.io/template-hash": "t1", "other": "dropped"},
      "ownerReferences": [{"kind": "DaemonSet", "name": "m-loader-abc"}],
      "finalizers": ["kmm.sigs.x-k8s.io/unload-confirmed"],
      "managedFields": [{"manager": "kube-controller-manager"}]
    },
    "spec": {"nodeName": "n1", "containers": [{"name": "loader", "image": "kmm-loader"}]},
    "status": {
      "phase": "Running",
      "conditions": [{"type": "Initialized", "status": "True"},
                     {"type": "Ready", "status": "False", "lastTransitionTime": "x"}],
      "initContainerStatuses": [{"name": "copy", "image": "i", "imageID": "id",
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "s"}}}],
      "containerStatuses": [{"name": "loader", "restartCount": 3, "image": "i",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": {"exitCode": 1, "message": "module in use",
                                     "finishedAt": "f"}}}]
    }
  })");
}

TEST(CachesTest, TrimPodKeepsWhatTheReconcilerReadsAndNothingElse) {
  const json trimmed = TrimPod(LoaderPod());
  const json expected = json::parse(R"({
    "metadata": {
      "name": "m-loader-abc-x1", "namespace": "ns", "resourceVersion": "7",
      "creationTimestamp": "2026-11-25T00:00:00Z",
      "labels": {"kmm.sigs.x-k8s.io/module": "m", "kmm.sigs.x-k8s.io/component": "loader",
                 "kmm.sigs.x-k8s.io/kernel-hash": "abc"},
      "annotations": {"kmm.sigs.x-k8s.io/template-hash": "t1"}
    },
    "spec": {"nodeName": "n1"},
    "status": {
      "conditions": [{"type": "Ready", "status": "False"}],
      "initContainerStatuses": [{}],
      "containerStatuses": [{
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": {"message": "module in use"}}}]
    }
  })");
  EXPECT_EQ(trimmed, expected) << trimmed.dump(2);
}

TEST(CachesTest, TrimPodKeepsAReadyPodsCreationTimeNot) {
  json pod = LoaderPod();
  pod["status"]["conditions"] = {{{"type", "Ready"}, {"status", "True"}}};
  EXPECT_FALSE(TrimPod(pod)["metadata"].contains("creationTimestamp"));
}

TEST(CachesTest, TrimPodKeepsWhatConfirmsTheUnloadOfAStoppingPod) {
  json pod = LoaderPod();
  pod["metadata"]["deletionTimestamp"] = "2026-11-25T01:00:00Z";
  const json trimmed = TrimPod(pod);
  EXPECT_EQ(trimmed["metadata"]["finalizers"], json({"kmm.sigs.x-k8s.io/unload-confirmed"}));
  EXPECT_EQ(trimmed["status"]["phase"], "Running");
  EXPECT_EQ(trimmed["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
  EXPECT_EQ(trimmed["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 1);
}

// Why a build pod cannot start, and which Job it belongs to: kept for the status message.
TEST(CachesTest, TrimPodKeepsWhyAPodIsNotScheduledAndItsJobsUid) {
  json pod = json::parse(R"({
    "metadata": {
      "name": "m-build-abc-x7k2p", "namespace": "ns",
      "labels": {"kmm.sigs.x-k8s.io/module": "m", "kmm.sigs.x-k8s.io/component": "build",
                 "kmm.sigs.x-k8s.io/kernel-hash": "abc", "job-name": "m-build-abc",
                 "batch.kubernetes.io/controller-uid": "j1", "controller-uid": "j1"}
    },
    "status": {
      "phase": "Pending",
      "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/3 nodes are available", "lastProbeTime": null,
                      "lastTransitionTime": "x"}]
    }
  })");
  const json expected = json::parse(R"({
    "metadata": {
      "name": "m-build-abc-x7k2p", "namespace": "ns",
      "labels": {"kmm.sigs.x-k8s.io/module": "m", "kmm.sigs.x-k8s.io/component": "build",
                 "kmm.sigs.x-k8s.io/kernel-hash": "abc",
                 "batch.kubernetes.io/controller-uid": "j1", "controller-uid": "j1"}
    },
    "status": {
      "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/3 nodes are available"}]
    }
  })");
  EXPECT_EQ(TrimPod(pod), expected) << TrimPod(pod).dump(2);
  pod["status"]["conditions"][0]["status"] = "True";
  EXPECT_FALSE(TrimPod(pod).contains("status")) << "a scheduled pod's is not kept";
}

TEST(CachesTest, TrimPodOfABarePodIsBare) {
  const json trimmed = TrimPod({{"metadata", {{"name", "p"}, {"namespace", "ns"}}}});
  EXPECT_EQ(trimmed, json::parse(R"({"metadata": {"name": "p", "namespace": "ns"}})"));
}

TEST(CachesTest, ModuleIndexIsNamespaceAndModuleLabel) {
  EXPECT_EQ(ModuleIndexOf(LoaderPod()), "ns/m");
  json unlabelled = LoaderPod();
  unlabelled["metadata"]["labels"].erase(std::string(desired::kModuleNameLabel));
  EXPECT_EQ(ModuleIndexOf(unlabelled), "");
}

}  // namespace
}  // namespace kmm::controllers
