// kmm-kube-bench: the Kubernetes client against a real API server (make bench, issue #6).
// Makes sure N Nodes exist, then measures an informer over them: time to a synced cache and
// the process RSS (run once with and once without a field-trimming transform, in separate
// processes), API requests while idle (must be only the watch), and watch-event throughput
// while other connections patch nodes as fast as the API server takes it.
//
//   kmm-kube-bench --kubeconfig FILE [--nodes 5000] [--transform] [--idle-seconds 20]
//                  [--updates 2000]
#include <malloc.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "common/cli.h"
#include "common/status.h"
#include "fmt/format.h"
#include "operator/kube/curl_kube_client.h"
#include "operator/kube/field_filter.h"
#include "operator/kube/informer.h"

namespace {

using kmm::kube::resources::kNodes;
using nlohmann::json;

// VmRSS, RssAnon and VmHWM in KiB.
std::map<std::string, long> MemoryKiB() {
  std::map<std::string, long> result;
  std::ifstream status("/proc/self/status");
  std::string key;
  long value;
  while (status >> key) {
    if (key == "VmRSS:" || key == "RssAnon:" || key == "VmHWM:" || key == "RssFile:") {
      status >> value;
      result[key.substr(0, key.size() - 1)] = value;
    }
    status.ignore(1 << 16, '\n');
  }
  return result;
}

// Counts requests by verb.
class CountingObserver : public kmm::kube::RequestObserver {
 public:
  void OnRequest(std::string_view verb, int) override {
    absl::MutexLock lock(&mu_);
    ++counts_[std::string(verb)];
  }
  absl::flat_hash_map<std::string, int> counts() {
    absl::MutexLock lock(&mu_);
    return counts_;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> counts_ ABSL_GUARDED_BY(mu_);
};

// A node as a kubelet reports it (a few KiB: conditions, capacity, images, managedFields).
json BenchNode(int i) {
  json images = json::array();
  for (int k = 0; k < 12; ++k) {
    images.push_back({{"names", {fmt::format("registry.example/team/image-{}@sha256:{:064x}", k, k),
                                 fmt::format("registry.example/team/image-{}:v1.{}", k, k)}},
                      {"sizeBytes", 100000000 + k}});
  }
  json conditions = json::array();
  for (const char* type : {"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"}) {
    conditions.push_back({{"type", type},
                          {"status", std::string(type) == "Ready" ? "True" : "False"},
                          {"reason", "KubeletHasSufficientResources"},
                          {"message", "kubelet reports this condition as expected"},
                          {"lastHeartbeatTime", "2026-11-25T00:00:00Z"},
                          {"lastTransitionTime", "2026-11-25T00:00:00Z"}});
  }
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", fmt::format("kmm-bench-{:05}", i)},
            {"labels",
             {{"kmm-bench", "true"},
              {"kubernetes.io/hostname", fmt::format("kmm-bench-{:05}", i)},
              {"kubernetes.io/os", "linux"},
              {"node.kubernetes.io/instance-type", "m5.large"},
              {"topology.kubernetes.io/zone", fmt::format("zone-{}", i % 3)}}}}},
          {"spec", {{"podCIDR", fmt::format("10.{}.{}.0/24", i / 256, i % 256)}}},
          {"status",
           {{"nodeInfo",
             {{"kernelVersion", fmt::format("5.15.0-{}-generic", 40 + i % 50)},
              {"osImage", "Ubuntu 22.04 LTS"},
              {"containerRuntimeVersion", "containerd://1.7.0"},
              {"kubeletVersion", "v1.37.2"},
              {"architecture", "amd64"},
              {"operatingSystem", "linux"}}},
            {"capacity", {{"cpu", "2"}, {"memory", "8Gi"}, {"pods", "110"}}},
            {"allocatable", {{"cpu", "2"}, {"memory", "7Gi"}, {"pods", "110"}}},
            {"conditions", conditions},
            {"images", images}}}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kmm-kube-bench: informer and client benchmarks against a real API server"};
  std::string kubeconfig;
  int nodes = 5000, idle_seconds = 20, updates = 2000;
  bool transform = false;
  app.add_option("--kubeconfig", kubeconfig)->required();
  app.add_option("--nodes", nodes);
  app.add_option("--idle-seconds", idle_seconds);
  app.add_option("--updates", updates);
  app.add_flag("--transform", transform, "Trim cached Nodes to what the operator reads");
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;

  auto config = kmm::kube::LoadKubeconfig(kubeconfig);
  if (!config.ok()) {
    fmt::print(stderr, "{}\n", config.status().message());
    return 1;
  }
  CountingObserver observer;
  kmm::kube::ClientOptions options;
  options.observer = &observer;
  auto created = kmm::kube::CurlKubeClient::Create(*config, options);
  if (!created.ok()) return 1;
  kmm::kube::CurlKubeClient& client = **created;

  // 1. The nodes (created once; later runs reuse them).
  {
    kmm::kube::ListOptions existing;
    existing.label_selector = "kmm-bench=true";
    existing.limit = 1000;
    std::set<std::string> have;  // page by page, keeping names only (whole Nodes are big)
    do {
      auto page = client.List(kNodes, "", existing);
      if (!page.ok()) {
        fmt::print(stderr, "listing nodes: {}\n", page.status().message());
        return 1;
      }
      for (const json& node : page->items) have.insert(node["metadata"]["name"].get<std::string>());
      existing.continue_token = page->continue_token;
    } while (!existing.continue_token.empty());
    std::atomic<int> next{0}, failures{0};
    std::vector<std::thread> writers;
    const absl::Time start = absl::Now();
    for (int w = 0; w < 8; ++w) {
      writers.emplace_back([&] {
        for (int i = next++; i < nodes; i = next++) {
          json node = BenchNode(i);
          if (have.contains(node["metadata"]["name"].get<std::string>())) continue;
          if (!client.Create(kNodes, "", node).ok()) ++failures;
        }
      });
    }
    for (std::thread& writer : writers) writer.join();
    if (failures > 0) {
      fmt::print(stderr, "{} nodes could not be created\n", failures.load());
      return 1;
    }
    if (static_cast<int>(have.size()) < nodes) {
      fmt::print("created {} nodes in {}\n", nodes - have.size(),
                 absl::FormatDuration(absl::Now() - start));
    }
  }
  malloc_trim(0);
  const auto memory_before = MemoryKiB();

  // 2. Informer over every node.
  kmm::kube::InformerOptions informer_options;
  informer_options.resource = kNodes;
  if (transform) {
    // What the operator reads of a Node: labels, taints, kernel and whether it is Ready.
    informer_options.transform = [](json node) {
      json trimmed = kmm::kube::KeepFields(
          node, {"/metadata/labels", "/spec/taints", "/spec/unschedulable",
                 "/status/nodeInfo/kernelVersion"});
      for (const json& condition : node["status"].value("conditions", json::array())) {
        if (condition.value("type", "") == "Ready") {
          trimmed["status"]["conditions"] = {{{"type", "Ready"}, {"status", condition["status"]}}};
        }
      }
      return trimmed;
    };
  }
  kmm::kube::Informer informer(client, informer_options);
  // Each patch sets a unique label value; count distinct values of this round that arrive.
  const std::string round = std::to_string(absl::ToUnixSeconds(absl::Now()));
  std::atomic<int> bench_updates_seen{0};
  std::set<std::string> values_seen;  // only the informer thread touches it
  kmm::kube::FunctionEventHandler counter;
  counter.on_update = [&](const kmm::kube::ObjectPtr&, const kmm::kube::ObjectPtr& now) {
    const json labels = (*now)["metadata"].value("labels", json::object());
    const std::string value = labels.value("kmm-bench-round", "");
    if (value.rfind(round + "-", 0) == 0 && values_seen.insert(value).second) ++bench_updates_seen;
  };
  informer.AddEventHandler(&counter);
  kmm::kube::Cancellation cancel;
  const absl::Time sync_start = absl::Now();
  std::thread runner([&] { informer.Run(cancel); });
  informer.WaitForSync(cancel, absl::Minutes(5));
  const absl::Duration sync_time = absl::Now() - sync_start;
  const auto memory_synced = MemoryKiB();
  malloc_trim(0);
  const auto memory_trimmed = MemoryKiB();

  // 3. Idle: nothing but the watch.
  const auto requests_before = observer.counts();
  absl::SleepFor(absl::Seconds(idle_seconds));
  const auto requests_after = observer.counts();
  int idle_requests = 0;
  for (const auto& [verb, count] : requests_after) {
    auto before = requests_before.find(verb);
    idle_requests += count - (before == requests_before.end() ? 0 : before->second);
  }

  // 4. Throughput: patch `updates` nodes from 8 connections; time until the cache has all.
  std::atomic<int> next{0};
  std::vector<std::thread> writers;
  const absl::Time update_start = absl::Now();
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&] {
      for (int i = next++; i < updates; i = next++) {
        client
            .MergePatch(kNodes, "", fmt::format("kmm-bench-{:05}", i % nodes),
                        {{"metadata", {{"labels", {{"kmm-bench-round", fmt::format("{}-{}", round, i)}}}}}},
                        "")
            .IgnoreError();
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  const absl::Duration write_time = absl::Now() - update_start;
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (bench_updates_seen < updates && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  const absl::Duration update_time = absl::Now() - update_start;
  cancel.Cancel();
  runner.join();

  fmt::print(
      "kube-bench: nodes={} transform={} sync_ms={:.0f} cached={} "
      "rss_before_kib={} rss_synced_kib={} rss_trimmed_kib={} anon_trimmed_kib={} hwm_kib={} "
      "idle_seconds={} idle_requests={} updates={} seen={} write_ms={:.0f} cache_ms={:.0f} "
      "events_per_s={:.0f} relists={} watch_errors={}\n",
      nodes, transform ? "yes" : "no", absl::ToDoubleMilliseconds(sync_time), informer.Size(),
      memory_before.at("VmRSS"), memory_synced.at("VmRSS"), memory_trimmed.at("VmRSS"),
      memory_trimmed.at("RssAnon"), memory_trimmed.at("VmHWM"), idle_seconds, idle_requests,
      updates, bench_updates_seen.load(), absl::ToDoubleMilliseconds(write_time),
      absl::ToDoubleMilliseconds(update_time),
      bench_updates_seen / absl::ToDoubleSeconds(update_time), informer.stats().lists,
      informer.stats().watch_errors);
  return bench_updates_seen >= updates && idle_requests == 0 ? 0 : 1;
}
