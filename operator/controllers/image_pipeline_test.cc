// In-cluster builds and signing through the Module reconciler, over the fake API (real
// informers) and a registry on 127.0.0.1: a missing image gets a build Job and its loaders
// wait; a finished build's image (labelled with the build's inputs hash) gets the loader
// DaemonSet, pinned to its digest; a changed Dockerfile replaces the Job; a failed build is
// reported with its log tail and not retried while its Job is kept; a Job whose pod cannot
// start says why; an image kmm did not build is used as it is; signing needs its Secrets. The
// same on a real node is test/node/build-test.sh.
#include "operator/controllers/image_pipeline.h"

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/controllers/testing/fake_registry.h"
#include "operator/controllers/testing/harness.h"
#include "operator/controllers/testing/objects.h"
#include "operator/desired/build_job.h"
#include "operator/desired/labels.h"
#include "operator/kube/api_error.h"
#include "operator/kube/testing/fake_kube_client.h"

namespace kmm::controllers {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using testing::FakeRegistry;
using testing::Harness;
using testing::Node;

namespace resources = kube::resources;

// Module ns/m building kernel 6.1.0's image in the cluster, pushed to `registry` over HTTP.
json BuildModule(const FakeRegistry& registry, json extra = json::object()) {
  json spec = {{"moduleLoader",
                {{"container",
                  {{"kernelMappings",
                    {{{"literal", "6.1.0"},
                      {"containerImage", registry.host() + "/kmm/m:${KERNEL_FULL_VERSION}"},
                      {"registryTLS", {{"insecure", true}}},
                      {"build", {{"dockerfileConfigMap", {{"name", "m-build"}}}}}}}}}}}}};
  spec.merge_patch(extra);
  return testing::Module(spec);
}

json ConfigMap(const std::string& dockerfile) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", "m-build"}, {"namespace", "ns"}}},
          {"data", {{"dockerfile", dockerfile}, {"kmm_ci_a.c", "/* source */"}}}};
}

json Secret(const std::string& name, const std::string& key, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata", {{"name", name}, {"namespace", "ns"}}},
          {"data", {{key, absl::Base64Escape(value)}}}};
}

std::vector<json> Items(kube::testing::FakeKubeClient& client, const kube::Resource& resource) {
  absl::StatusOr<kube::ObjectList> list = client.List(resource, "ns", {});
  return list.ok() ? list->items : std::vector<json>{};
}

std::vector<std::string> EventReasons(kube::testing::FakeKubeClient& client) {
  std::vector<std::string> reasons;
  for (const json& event : Items(client, resources::kEvents)) reasons.push_back(event["reason"]);
  return reasons;
}

json Condition(kube::testing::FakeKubeClient& client, const std::string& type) {
  absl::StatusOr<json> module = client.Get(resources::kModules, "ns", "m");
  for (const json& condition : (*module)["status"]["conditions"]) {
    if (condition["type"] == type) return condition;
  }
  return nullptr;
}

// The Job as the Job controller leaves it when it ended (Complete or Failed).
json Finished(json job, const std::string& condition) {
  job["metadata"]["uid"] = "job-" + condition;
  job["status"]["conditions"] = {{{"type", condition}, {"status", "True"}}};
  return job;
}

// The Job as the Job controller keeps it while its pod runs or waits to.
json Active(json job) {
  job["metadata"]["uid"] = "job-active";
  job["status"]["active"] = 1;
  return job;
}

// A pod of `job` as the Job controller makes it (labelled with the Job's uid), with `status`.
json JobPod(const json& job, const std::string& name, json status) {
  json labels = job["spec"]["template"]["metadata"]["labels"];
  const std::string uid = job["metadata"].value("uid", "");
  labels[std::string(desired::kJobUidLabel)] = uid;
  labels[std::string(desired::kLegacyJobUidLabel)] = uid;
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "ns"}, {"labels", labels}}},
          {"status", std::move(status)}};
}

json Unschedulable(const std::string& message) {
  return {{"phase", "Pending"},
          {"conditions",
           {{{"type", "PodScheduled"},
             {"status", "False"},
             {"reason", "Unschedulable"},
             {"message", message}}}}};
}

json Waiting(const std::string& reason, const std::string& message) {
  json waiting = {{"reason", reason}, {"message", message}};
  return {{"phase", "Pending"},
          {"conditions", {{{"type", "PodScheduled"}, {"status", "True"}}}},
          {"containerStatuses", {{{"name", "build"}, {"state", {{"waiting", waiting}}}}}}};
}

std::string HashOf(const json& job) {
  return job["metadata"]["annotations"][std::string(desired::kInputsHashAnnotation)];
}

class ImagePipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_.Put(resources::kNodes, Node("n1", false));
    client_.Put(resources::kConfigMaps, ConfigMap("FROM scratch\n"));
  }
  kube::Result Reconcile() {
    Harness harness(client_);
    absl::StatusOr<kube::Result> result = harness.Reconcile();
    EXPECT_TRUE(result.ok()) << result.status();
    return result.value_or(kube::Result{});
  }
  // Applies the building Module with `build` merged into its build section and returns its
  // Job, active (its pod created) as the Job controller would make it.
  json ActiveBuildJob(const json& build) {
    json module = BuildModule(registry_);
    module["spec"]["moduleLoader"]["container"]["kernelMappings"][0]["build"].merge_patch(build);
    client_.Put(resources::kModules, module);
    Reconcile();
    json job = Active(Items(client_, resources::kJobs).at(0));
    client_.Put(resources::kJobs, job);
    return job;
  }
  kube::testing::FakeKubeClient client_;
  FakeRegistry registry_;
};

TEST_F(ImagePipelineTest, AMissingImageIsBuiltAndTheLoadersWaitThenPullItByDigest) {
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  std::vector<json> jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0]["metadata"]["name"], desired::BuildJobName("m", "6.1.0"));
  EXPECT_THAT(Items(client_, resources::kDaemonSets), IsEmpty()) << "the loaders wait";
  EXPECT_THAT(EventReasons(client_), Contains("BuildCreated"));
  json progressing = Condition(client_, "Progressing");
  EXPECT_EQ(progressing["status"], "True");
  EXPECT_EQ(progressing["reason"], "ImageBuild");
  EXPECT_THAT(progressing["message"].get<std::string>(),
              HasSubstr("Building for kernel 6.1.0: Job m-build-"));

  // Running: nothing new.
  Reconcile();
  EXPECT_EQ(Items(client_, resources::kJobs).size(), 1u);
  EXPECT_THAT(Items(client_, resources::kDaemonSets), IsEmpty());

  // Done: the build pushed the image with its inputs hash.
  const std::string digest = registry_.Put(
      "kmm/m", "6.1.0", {{std::string(desired::kBuildHashImageLabel), HashOf(jobs[0])}});
  client_.Put(resources::kJobs, Finished(jobs[0], "Complete"));
  Reconcile();
  std::vector<json> daemonsets = Items(client_, resources::kDaemonSets);
  ASSERT_EQ(daemonsets.size(), 1u);
  EXPECT_EQ(daemonsets[0]["spec"]["template"]["spec"]["initContainers"][1]["image"],
            registry_.host() + "/kmm/m:6.1.0@" + digest);
  EXPECT_THAT(EventReasons(client_), Contains("BuildSucceeded"));
  EXPECT_EQ(Items(client_, resources::kJobs).size(), 1u) << "the Job controller's TTL removes it";

  // Once the Job is gone, the labelled image alone says it is built: nothing is rebuilt.
  client_.Delete(resources::kJobs, "ns", jobs[0]["metadata"]["name"].get<std::string>(), {})
      .IgnoreError();
  Reconcile();
  EXPECT_THAT(Items(client_, resources::kJobs), IsEmpty());
  EXPECT_EQ(Items(client_, resources::kDaemonSets).size(), 1u);
}

TEST_F(ImagePipelineTest, AChangedDockerfileRebuildsAndAnUnchangedOneNeverDoes) {
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  const json first = Items(client_, resources::kJobs).at(0);
  registry_.Put("kmm/m", "6.1.0", {{std::string(desired::kBuildHashImageLabel), HashOf(first)}});
  client_.Delete(resources::kJobs, "ns", first["metadata"]["name"].get<std::string>(), {})
      .IgnoreError();
  Reconcile();
  ASSERT_EQ(Items(client_, resources::kDaemonSets).size(), 1u);
  const size_t before = testing::Writes(client_).size();

  Reconcile();  // unchanged inputs: no Job
  const std::vector<std::string> writes = testing::Writes(client_);
  for (size_t i = before; i < writes.size(); ++i) {
    EXPECT_THAT(writes[i], ::testing::Not(HasSubstr("jobs"))) << writes[i];
  }

  client_.Put(resources::kConfigMaps, ConfigMap("FROM scratch\nRUN true\n"));
  Reconcile();
  std::vector<json> jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 1u) << "rebuilt";
  EXPECT_NE(HashOf(jobs[0]), HashOf(first));
  EXPECT_EQ(Items(client_, resources::kDaemonSets).size(), 1u)
      << "the loaders keep what they loaded until the new image is there";
  EXPECT_EQ(Condition(client_, "Progressing")["reason"], "ImageBuild");
}

TEST_F(ImagePipelineTest, AJobWhoseInputsChangedIsReplaced) {
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  const json old_job = Items(client_, resources::kJobs).at(0);
  client_.Put(resources::kConfigMaps, ConfigMap("FROM scratch\nRUN false\n"));
  Reconcile();
  EXPECT_THAT(testing::Writes(client_),
              Contains("delete jobs ns/" + old_job["metadata"]["name"].get<std::string>()));
  Reconcile();  // the fake deletes at once: a new Job with the new hash
  std::vector<json> jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_NE(HashOf(jobs[0]), HashOf(old_job));
}

TEST_F(ImagePipelineTest, AFailedBuildIsReportedWithItsLogTailAndKeptNotRetried) {
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  const json job = Items(client_, resources::kJobs).at(0);
  client_.Put(resources::kJobs, Finished(job, "Failed"));
  // kaniko's log as the kubelet keeps its tail: coloured, the error last.
  std::string log;
  for (int i = 0; i < 30; ++i) log += fmt::format("\x1b[36mINFO\x1b[0m[0001] step {}\n", i);
  log +=
      "kmm_ci_a.c:3: error: expected ';' before '}' token\nerror building image: exit status 1\n";
  json terminated = {{"exitCode", 1}, {"message", log}};
  json container_status = {{"name", "build"}, {"state", {{"terminated", terminated}}}};
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", "m-build-x"},
                {"namespace", "ns"},
                {"labels", job["spec"]["template"]["metadata"]["labels"]}}},
              {"status", {{"phase", "Failed"}, {"containerStatuses", {container_status}}}}};
  client_.Put(resources::kPods, pod);
  Reconcile();
  std::vector<std::string> reasons = EventReasons(client_);
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "BuildFailed"), 1);
  Reconcile();
  EXPECT_EQ(Items(client_, resources::kJobs).size(), 1u) << "kept, not retried";
  const std::vector<std::string> writes = testing::Writes(client_);
  EXPECT_EQ(
      std::count_if(writes.begin(), writes.end(),
                    [](const std::string& write) { return write.rfind("create jobs", 0) == 0; }),
      1);
  json degraded = Condition(client_, "Degraded");
  EXPECT_EQ(degraded["status"], "True");
  EXPECT_EQ(degraded["reason"], "BuildFailed");
  EXPECT_THAT(degraded["message"].get<std::string>(),
              HasSubstr("BuildFailed for kernel 6.1.0 (" + registry_.host() +
                        "/kmm/m:6.1.0): Job m-build-"));
  EXPECT_THAT(degraded["message"].get<std::string>(),
              HasSubstr("INFO[0001] step 29\nkmm_ci_a.c:3: error: expected ';' before '}' token\n"
                        "error building image: exit status 1"))
      << "the last lines, without colours";
  EXPECT_THAT(degraded["message"].get<std::string>(), ::testing::Not(HasSubstr("step 21\n")));
  EXPECT_THAT(degraded["message"].get<std::string>(), ::testing::Not(HasSubstr("\x1b")));
  EXPECT_THAT(Items(client_, resources::kDaemonSets), IsEmpty());
}

TEST_F(ImagePipelineTest, AnImageKmmDidNotBuildIsUsedAsItIs) {
  const std::string digest = registry_.Put("kmm/m", "6.1.0");
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  EXPECT_THAT(Items(client_, resources::kJobs), IsEmpty());
  std::vector<json> daemonsets = Items(client_, resources::kDaemonSets);
  ASSERT_EQ(daemonsets.size(), 1u);
  EXPECT_EQ(daemonsets[0]["spec"]["template"]["spec"]["initContainers"][1]["image"],
            registry_.host() + "/kmm/m:6.1.0@" + digest);
}

TEST_F(ImagePipelineTest, TheRebuildTriggerRebuildsAnImageKmmBuilt) {
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  const json first = Items(client_, resources::kJobs).at(0);
  registry_.Put("kmm/m", "6.1.0", {{std::string(desired::kBuildHashImageLabel), HashOf(first)}});
  client_.Delete(resources::kJobs, "ns", first["metadata"]["name"].get<std::string>(), {})
      .IgnoreError();
  client_.Put(resources::kModules, BuildModule(registry_, {{"imageRebuildTriggerGeneration", 2}}));
  Reconcile();
  std::vector<json> jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_NE(HashOf(jobs[0]), HashOf(first));
  EXPECT_EQ(jobs[0]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"],
            first["spec"]["template"]["spec"]["containers"][0]["volumeMounts"])
      << "the trigger is an input, not a file of the context";
}

TEST_F(ImagePipelineTest, AMissingConfigMapOrUnreachableRegistryIsDegradedByName) {
  client_.Put(resources::kModules, BuildModule(registry_));
  client_.Delete(resources::kConfigMaps, "ns", "m-build", {}).IgnoreError();
  Reconcile();
  EXPECT_THAT(Items(client_, resources::kJobs), IsEmpty());
  json degraded = Condition(client_, "Degraded");
  EXPECT_EQ(degraded["reason"], "BuildInputMissing");
  EXPECT_THAT(degraded["message"].get<std::string>(),
              HasSubstr("ConfigMap ns/m-build (build.dockerfileConfigMap) not found"));

  client_.Put(resources::kConfigMaps, ConfigMap("FROM scratch\n"));
  json unreachable = BuildModule(registry_);
  unreachable["spec"]["moduleLoader"]["container"]["kernelMappings"][0]["containerImage"] =
      "127.0.0.1:1/kmm/m:6.1.0";
  client_.Put(resources::kModules, unreachable);
  EXPECT_EQ(Reconcile().requeue_after, absl::Seconds(60))
      << "no event brings the registry back: checked again";
  degraded = Condition(client_, "Degraded");
  EXPECT_EQ(degraded["reason"], "ImageCheckFailed");
  EXPECT_THAT(degraded["message"].get<std::string>(), HasSubstr("cannot reach the registry"));
  EXPECT_THAT(Items(client_, resources::kJobs), IsEmpty()) << "no build on a guess";
}

TEST_F(ImagePipelineTest, TheImageRepoSecretIsReadForTheRegistryAndItsErrorsAreTold) {
  json module = BuildModule(registry_, {{"imageRepoSecret", {{"name", "pull"}}}});
  client_.Put(resources::kModules, module);
  EXPECT_EQ(Reconcile().requeue_after, absl::Seconds(60)) << "Secrets are not watched";
  json degraded = Condition(client_, "Degraded");
  EXPECT_EQ(degraded["reason"], "ImageCheckFailed");
  EXPECT_THAT(degraded["message"].get<std::string>(),
              HasSubstr("Secret ns/pull (imageRepoSecret) not found; create it"));
  EXPECT_THAT(Items(client_, resources::kJobs), IsEmpty());
  EXPECT_EQ(registry_.requests(), 0) << "not asked without the credentials it was given";

  client_.Put(resources::kSecrets, Secret("pull", "token", "not a docker config"));
  Reconcile();
  EXPECT_THAT(Condition(client_, "Degraded")["message"].get<std::string>(),
              HasSubstr("Secret ns/pull (imageRepoSecret) has no .dockerconfigjson"));

  // An API error, not an answer: the reconcile fails and is retried with backoff.
  const absl::Status unavailable = kube::ApiError(500, "InternalError", "etcdserver: timed out");
  client_.FailOn("get secrets ns/pull", unavailable);
  {
    Harness harness(client_);
    absl::StatusOr<kube::Result> result = harness.Reconcile();
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), unavailable.code());
    EXPECT_THAT(std::string(result.status().message()),
                HasSubstr("reading Secret ns/pull (imageRepoSecret)"));
  }

  const std::string config = fmt::format(R"({{"auths":{{"{}":{{"auth":"{}"}}}}}})",
                                         registry_.host(), absl::Base64Escape("user:password"));
  client_.Put(resources::kSecrets, Secret("pull", ".dockerconfigjson", config));
  Reconcile();
  EXPECT_EQ(Condition(client_, "Degraded")["status"], "False");
  EXPECT_GT(registry_.requests(), 0);
  std::vector<json> jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 1u) << "the image is missing: built, pushed with the same Secret";
  EXPECT_THAT(jobs[0]["spec"]["template"]["spec"]["volumes"].dump(), HasSubstr("\"pull\""));
}

TEST_F(ImagePipelineTest, SigningWaitsForItsSecretsThenSignsWhatTheBuildPushed) {
  json sign = {{"moduleLoader",
                {{"container",
                  {{"sign",
                    {{"keySecret", {{"name", "signing-key"}}},
                     {"certSecret", {{"name", "signing-cert"}}},
                     {"filesToSign", {"/opt/lib/modules/${KERNEL_FULL_VERSION}/m.ko"}}}}}}}}};
  client_.Put(resources::kModules, BuildModule(registry_, sign));
  EXPECT_EQ(Reconcile().requeue_after, absl::Seconds(60)) << "Secrets are not watched";
  json degraded = Condition(client_, "Degraded");
  EXPECT_EQ(degraded["reason"], "SignInputMissing");
  EXPECT_THAT(degraded["message"].get<std::string>(),
              HasSubstr("Secret ns/signing-key (sign.keySecret) not found; create it"));
  EXPECT_THAT(Items(client_, resources::kJobs), IsEmpty()) << "nothing starts without the key";

  client_.Put(resources::kSecrets, Secret("signing-key", "key", "PRIVATE KEY"));
  client_.Put(resources::kSecrets, Secret("signing-cert", "cert", "CERTIFICATE"));
  Reconcile();
  std::vector<json> jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0]["metadata"]["name"], desired::BuildJobName("m", "6.1.0")) << "build first";
  registry_.Put("kmm/m", "6.1.0", {{std::string(desired::kBuildHashImageLabel), HashOf(jobs[0])}});
  client_.Put(resources::kJobs, Finished(jobs[0], "Complete"));
  Reconcile();
  jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 2u);
  const json& sign_job =
      jobs[0]["metadata"]["name"] == desired::SignJobName("m", "6.1.0") ? jobs[0] : jobs[1];
  EXPECT_EQ(sign_job["metadata"]["name"], desired::SignJobName("m", "6.1.0"));
  EXPECT_THAT(
      sign_job["spec"]["template"]["metadata"]["annotations"]["kmm.sigs.x-k8s.io/sign-dockerfile"]
          .get<std::string>(),
      HasSubstr("FROM " + registry_.host() + "/kmm/m:6.1.0 AS source"));
  EXPECT_THAT(Items(client_, resources::kDaemonSets), IsEmpty()) << "an unsigned image never loads";
  EXPECT_THAT(EventReasons(client_), Contains("SignCreated"));

  // Signed: the image carries both hashes; the loaders get it.
  const std::string digest =
      registry_.Put("kmm/m", "6.1.0",
                    {{std::string(desired::kBuildHashImageLabel),
                      HashOf(jobs[0] == sign_job ? jobs[1] : jobs[0])},
                     {std::string(desired::kSignHashImageLabel), HashOf(sign_job)}});
  client_.Put(resources::kJobs, Finished(sign_job, "Complete"));
  Reconcile();
  std::vector<json> daemonsets = Items(client_, resources::kDaemonSets);
  ASSERT_EQ(daemonsets.size(), 1u);
  EXPECT_EQ(daemonsets[0]["spec"]["template"]["spec"]["initContainers"][1]["image"],
            registry_.host() + "/kmm/m:6.1.0@" + digest);

  // A rotated key signs again.
  client_.Put(resources::kSecrets, Secret("signing-key", "key", "NEW PRIVATE KEY"));
  Reconcile();
  EXPECT_THAT(testing::Writes(client_),
              Contains("delete jobs ns/" + desired::SignJobName("m", "6.1.0")));
}

TEST_F(ImagePipelineTest, JobsOfKernelsWithoutNodesGo) {
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  ASSERT_EQ(Items(client_, resources::kJobs).size(), 1u);
  client_.Delete(resources::kNodes, "", "n1", {}).IgnoreError();
  Reconcile();
  EXPECT_THAT(testing::Writes(client_),
              Contains("delete jobs ns/" + desired::BuildJobName("m", "6.1.0")));
}

// A COS node reports 6.1.0+; its Job carries the kernel as mappings see it, 6.1.0. The Job is
// the node kernel's, not one to delete (which, recreated on each reconcile, would loop).
TEST_F(ImagePipelineTest, AKernelWithATrailingPlusKeepsItsBuildJob) {
  json node = Node("n1", false);
  node["status"]["nodeInfo"]["kernelVersion"] = "6.1.0+";
  client_.Put(resources::kNodes, node);
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  Reconcile();
  EXPECT_EQ(Items(client_, resources::kJobs).size(), 1u);
  EXPECT_THAT(testing::Writes(client_), Not(Contains(HasSubstr("delete jobs"))));
}

TEST_F(ImagePipelineTest, AFailedBuildIsRetriedOnceItsJobIsGone) {
  client_.Put(resources::kModules, BuildModule(registry_));
  Reconcile();
  const json job = Items(client_, resources::kJobs).at(0);
  client_.Put(resources::kJobs, Finished(job, "Failed"));
  Reconcile();
  ASSERT_EQ(Condition(client_, "Degraded")["reason"], "BuildFailed");
  // The Job controller's TTL (--finished-job-ttl) removes it: the next reconcile builds again.
  client_.Delete(resources::kJobs, "ns", job["metadata"]["name"].get<std::string>(), {})
      .IgnoreError();
  Reconcile();
  std::vector<json> jobs = Items(client_, resources::kJobs);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_FALSE(jobs[0].contains("status")) << "a new Job";
  EXPECT_EQ(Condition(client_, "Progressing")["reason"], "ImageBuild");
}

TEST_F(ImagePipelineTest, AKernelWhoseImageIsBuiltWaitsAndTheOthersGoAhead) {
  json node = Node("n2", false);
  node["status"]["nodeInfo"]["kernelVersion"] = "6.2.0";
  node["metadata"]["labels"][std::string(desired::kKernelVersionLabel)] = "6.2.0";
  client_.Put(resources::kNodes, node);
  json module = BuildModule(registry_);
  module["spec"]["moduleLoader"]["container"]["kernelMappings"].push_back(
      {{"literal", "6.2.0"}, {"containerImage", "img:6.2.0"}});
  client_.Put(resources::kModules, module);
  Reconcile();
  ASSERT_EQ(Items(client_, resources::kJobs).size(), 1u);
  std::vector<json> daemonsets = Items(client_, resources::kDaemonSets);
  ASSERT_EQ(daemonsets.size(), 1u) << "only the kernel that builds nothing";
  EXPECT_EQ(daemonsets[0]["spec"]["template"]["spec"]["initContainers"][1]["image"], "img:6.2.0");
}

// A build pod no node takes (build.selector matches none) is never failed, so its Job stays
// active: the status says why and what to check, and the reconcile looks again until the Job
// ends, as the pod's fate may change without the Job changing.
TEST_F(ImagePipelineTest, ABuildPodNoNodeTakesIsReportedWithTheSchedulersMessage) {
  const json job = ActiveBuildJob({{"selector", {{"kmm-builder", "true"}}}});
  const std::string name = job["metadata"]["name"];
  const std::string scheduler =
      "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
      "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
  client_.Put(resources::kPods, JobPod(job, name + "-x7k2p", Unschedulable(scheduler)));
  EXPECT_GT(Reconcile().requeue_after, absl::ZeroDuration()) << "while the Job is active";
  json progressing = Condition(client_, "Progressing");
  EXPECT_EQ(progressing["status"], "True") << "the Job may still start";
  EXPECT_EQ(progressing["reason"], "ImageBuild");
  const std::string message = progressing["message"];
  EXPECT_THAT(message, HasSubstr("Job " + name + " cannot start: its pod " + name +
                                 "-x7k2p fits no node (Unschedulable: " +
                                 scheduler.substr(0, scheduler.size() - 1) + ")"));
  EXPECT_THAT(message, HasSubstr("check build.selector and the nodes' labels and taints"));
  EXPECT_EQ(Condition(client_, "Degraded")["status"], "False");

  // A node labelled for builds takes it; a pod of an earlier Job of that name, still pending,
  // is not this Job's.
  json running = {
      {"phase", "Running"},
      {"conditions", {{{"type", "PodScheduled"}, {"status", "True"}}}},
      {"containerStatuses", {{{"name", "build"}, {"state", {{"running", {{"startedAt", "t"}}}}}}}}};
  client_.Put(resources::kPods, JobPod(job, name + "-x7k2p", running));
  json earlier = job;
  earlier["metadata"]["uid"] = "job-earlier";
  client_.Put(resources::kPods, JobPod(earlier, name + "-old00", Unschedulable(scheduler)));
  EXPECT_GT(Reconcile().requeue_after, absl::ZeroDuration());
  EXPECT_THAT(Condition(client_, "Progressing")["message"].get<std::string>(),
              HasSubstr("Job " + name + " is running"));

  // Ended: nothing to look at again.
  client_.Put(resources::kJobs, Finished(job, "Failed"));
  EXPECT_EQ(Reconcile().requeue_after, absl::ZeroDuration()) << "no Job is active";
}

TEST_F(ImagePipelineTest, ABuilderImageThatCannotBePulledIsReportedWithTheImage) {
  const json job = ActiveBuildJob({{"kanikoParams", {{"tag", "v0.0.0-missing"}}}});
  const std::string name = job["metadata"]["name"];
  const std::string image = job["spec"]["template"]["spec"]["containers"][0]["image"];
  ASSERT_THAT(image, ::testing::EndsWith(":v0.0.0-missing"));
  const std::string kubelet = "failed to pull and unpack image \"" + image +
                              "\": failed to resolve reference \"" + image + "\": not found";
  client_.Put(resources::kPods, JobPod(job, name + "-q9w8e", Waiting("ErrImagePull", kubelet)));
  EXPECT_GT(Reconcile().requeue_after, absl::ZeroDuration());
  json progressing = Condition(client_, "Progressing");
  EXPECT_EQ(progressing["reason"], "ImageBuild");
  EXPECT_THAT(
      progressing["message"].get<std::string>(),
      HasSubstr("Job " + name + " cannot start: its pod " + name +
                "-q9w8e cannot pull the builder image " + image + " (ErrImagePull: " + kubelet +
                "); check build.kanikoParams.tag, the operator's "
                "--builder-image and that the nodes can pull from its registry"));

  client_.Put(resources::kPods,
              JobPod(job, name + "-q9w8e",
                     Waiting("ImagePullBackOff", "Back-off pulling image \"" + image + "\".")));
  Reconcile();
  EXPECT_THAT(Condition(client_, "Progressing")["message"].get<std::string>(),
              HasSubstr("(ImagePullBackOff: Back-off pulling image \"" + image + "\")"));
}

// The API failing (500, 403) while the signing Secrets are read says nothing about them: the
// reconcile fails and is retried with backoff, and the Module is not told to create them.
TEST_F(ImagePipelineTest, AnApiErrorReadingASigningSecretIsRetriedNotReportedMissing) {
  json sign = {{"moduleLoader",
                {{"container",
                  {{"sign",
                    {{"keySecret", {{"name", "signing-key"}}},
                     {"certSecret", {{"name", "signing-cert"}}},
                     {"filesToSign", {"/opt/lib/modules/${KERNEL_FULL_VERSION}/m.ko"}}}}}}}}};
  client_.Put(resources::kModules, BuildModule(registry_, sign));
  client_.Put(resources::kSecrets, Secret("signing-key", "key", "PRIVATE KEY"));
  client_.Put(resources::kSecrets, Secret("signing-cert", "cert", "CERTIFICATE"));
  for (const auto& [secret, error] :
       {std::pair{"signing-key", kube::ApiError(500, "InternalError", "etcdserver: timed out")},
        std::pair{"signing-cert",
                  kube::ApiError(403, "Forbidden", "secrets \"signing-cert\" is forbidden")}}) {
    client_.FailOn(fmt::format("get secrets ns/{}", secret), error);
    Harness harness(client_);
    absl::StatusOr<kube::Result> result = harness.Reconcile();
    ASSERT_FALSE(result.ok()) << secret;
    EXPECT_EQ(result.status().code(), error.code());
    EXPECT_THAT(std::string(result.status().message()),
                HasSubstr(fmt::format("reading Secret ns/{}", secret)));
    const json degraded = Condition(client_, "Degraded");
    EXPECT_TRUE(degraded.is_null() || degraded["reason"] != "SignInputMissing") << degraded;
    EXPECT_THAT(Items(client_, resources::kJobs), IsEmpty());
  }
  Reconcile();  // the retry reads them
  EXPECT_EQ(Items(client_, resources::kJobs).size(), 1u);
  EXPECT_EQ(Condition(client_, "Degraded")["status"], "False");
}

}  // namespace
}  // namespace kmm::controllers
