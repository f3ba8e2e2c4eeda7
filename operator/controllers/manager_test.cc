// The manager's event handlers decide how much work a change makes: a Module's own status
// update makes none, a spec change makes one reconcile at once, and a burst of changes to a
// Module's pods waits for the batch interval and then makes one.
#include "operator/controllers/manager.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/controllers/testing/objects.h"
#include "operator/desired/labels.h"
#include "operator/kube/testing/fake_kube_client.h"
#include "re2/re2.h"

namespace kmm::controllers {
namespace {

using kube::WatchEvent;
using nlohmann::json;

json Module(int64_t generation, std::string resource_version) {
  json module = testing::Module();
  module["metadata"]["generation"] = generation;
  module["metadata"]["resourceVersion"] = std::move(resource_version);
  return module;
}

json Pod(int index, std::string resource_version) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", fmt::format("m-loader-{}", index)},
            {"namespace", "ns"},
            {"resourceVersion", std::move(resource_version)},
            {"labels",
             {{desired::kModuleNameLabel, "m"},
              {desired::kComponentLabel, desired::kLoaderComponent}}}}},
          {"spec", {{"nodeName", fmt::format("n{}", index)}}}};
}

// The module controller's reconciles so far, from the metrics the manager registers.
int ModuleReconciles(const kube::Registry& registry) {
  static const RE2 kLine(R"(kmm_reconcile_total\{controller="module",[^}]*\} (\d+))");
  int total = 0;
  const std::string text = registry.Render();
  re2::StringPiece rest(text.data(), text.size());
  int count = 0;
  while (RE2::FindAndConsume(&rest, kLine, &count)) total += count;
  return total;
}

class ManagerTest : public ::testing::Test {
 protected:
  void Start(absl::Duration batch) {
    options_.batch_owned_changes = batch;
    options_.release_memory_every = absl::ZeroDuration();
    manager_ = std::make_unique<Manager>(client_, options_, registry_);
    manager_->StartCaches();
    ASSERT_TRUE(manager_->StartControllers(cancel_, absl::Seconds(10)));
  }
  // Waits until `count` reconciles happened, and `settle` longer to see that no more do.
  void ExpectReconciles(int count, absl::Duration settle = absl::Milliseconds(600)) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (ModuleReconciles(registry_) < count && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    absl::SleepFor(settle);
    EXPECT_EQ(ModuleReconciles(registry_), count);
  }
  void TearDown() override {
    if (manager_) manager_->Stop();
  }

  kube::testing::FakeKubeClient client_;
  kube::Registry registry_;
  ManagerOptions options_;
  kube::Cancellation cancel_;
  std::unique_ptr<Manager> manager_;
};

TEST_F(ManagerTest, AModulesOwnStatusUpdateMakesNoWorkASpecChangeDoes) {
  client_.Put(kube::resources::kModules, Module(1, "1"));
  json status_only = Module(1, "5");
  status_only["status"] = {{"moduleLoader", {{"desiredNumber", 0}}}};
  json spec_change = Module(2, "6");
  spec_change["spec"]["moduleLoader"]["container"]["modprobe"]["moduleName"] = "m2";
  Start(absl::Milliseconds(200));
  ExpectReconciles(1);  // the Module's add
  client_.AddWatch("modules", {{{WatchEvent::Type::kModified, status_only}}});
  ExpectReconciles(1, absl::Seconds(1));  // as the reconciler's own status writes come back
  client_.AddWatch("modules", {{{WatchEvent::Type::kModified, spec_change}}});
  ExpectReconciles(2);
}

TEST_F(ManagerTest, ABurstOfPodChangesWaitsForTheBatchAndMakesOneReconcile) {
  client_.Put(kube::resources::kModules, Module(1, "1"));
  Start(absl::Milliseconds(1500));
  ExpectReconciles(1, absl::Milliseconds(100));  // the Module's own add: at once
  std::vector<WatchEvent> burst;
  for (int i = 0; i < 50; ++i) {
    burst.push_back({WatchEvent::Type::kAdded, Pod(i, std::to_string(100 + i))});
  }
  const absl::Time sent = absl::Now();
  client_.AddWatch("pods", {std::move(burst)});
  // Nothing before the batch interval is over (the pod watch starts within its backoff)...
  while (absl::Now() < sent + absl::Milliseconds(1200)) {
    ASSERT_EQ(ModuleReconciles(registry_), 1) << "reconciled before the batch interval";
    absl::SleepFor(absl::Milliseconds(20));
  }
  // ...then one reconcile for all 50.
  ExpectReconciles(2, absl::Seconds(2));
}

}  // namespace
}  // namespace kmm::controllers
