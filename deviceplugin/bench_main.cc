// kmm-device-plugin-bench: measures the shipped kmm-device-plugin binary against 256
// emulated devices (umockdev; run under umockdev-wrapper, see bench/run):
//   RSS after start and after 10,000 Allocate calls (anonymous and file-backed, with the
//   test harness's own preloaded libraries counted apart), Allocate latency over the unix
//   socket, uevent-to-ListAndWatch latency, and CPU used while idle.
#include <signal.h>
#include <sys/wait.h>
#include <umockdev.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/testing/temp_dir.h"
#include "deviceplugin/device_plugin.h"
#include "deviceplugin/testing_kubelet.h"
#include "fmt/format.h"

namespace {

using Clock = std::chrono::steady_clock;
using kmm::deviceplugin::testing::Describe;

// Resident memory of one kind of mapping: a file's segments with one set of permissions
// ("kmm-device-plugin r-xp"), or the anonymous mappings ("[anon] rw-p", "[heap] rw-p").
struct Mapping {
  std::string name;
  double size_kib = 0, rss_kib = 0, anon_kib = 0;
};

struct Memory {
  double total_kib = 0, anon_kib = 0, file_kib = 0, harness_kib = 0;
  std::vector<Mapping> mappings;  // in address order of their first segment
};

// Sums /proc/<pid>/smaps; mappings of the umockdev preload and its GLib are the harness's.
Memory MemoryOf(pid_t pid) {
  Memory memory;
  std::ifstream smaps(fmt::format("/proc/{}/smaps", pid));
  std::string line, mapping;
  Mapping* current = nullptr;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') != std::string::npos && line.find(':') > 12) {
      mapping = line;
      // "start-end perms offset dev inode [path]"
      std::istringstream fields(line);
      std::string range, perms, offset, device, inode, path;
      fields >> range >> perms >> offset >> device >> inode >> path;
      const std::string name =
          (path.empty() ? "[anon]" : path.substr(path.rfind('/') + 1)) + " " + perms;
      auto it = std::find_if(memory.mappings.begin(), memory.mappings.end(),
                             [&](const Mapping& m) { return m.name == name; });
      if (it == memory.mappings.end()) {
        memory.mappings.push_back(Mapping{.name = name});
        it = memory.mappings.end() - 1;
      }
      current = &*it;
      continue;
    }
    double kib = 0;
    const bool harness = mapping.find("umockdev") != std::string::npos ||
                         mapping.find("libg") != std::string::npos ||
                         mapping.find("libffi") != std::string::npos ||
                         mapping.find("libpcre") != std::string::npos;
    if (std::sscanf(line.c_str(), "Size: %lf kB", &kib) == 1) {
      if (current != nullptr) current->size_kib += kib;
    } else if (std::sscanf(line.c_str(), "Rss: %lf kB", &kib) == 1) {
      memory.total_kib += kib;
      if (harness) memory.harness_kib += kib;
      if (current != nullptr) current->rss_kib += kib;
    } else if (std::sscanf(line.c_str(), "Anonymous: %lf kB", &kib) == 1) {
      memory.anon_kib += kib;
      if (current != nullptr) current->anon_kib += kib;
    }
  }
  memory.file_kib = memory.total_kib - memory.anon_kib;
  return memory;
}

double CpuSeconds(pid_t pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) {
      stime = std::stod(field);
      break;
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[static_cast<size_t>(p * (values.size() - 1))];
}

void PrintMemory(const char* when, const Memory& m, bool mappings) {
  const double own = m.total_kib - m.harness_kib;
  fmt::print(
      "  RSS {:<22} {:6.2f} MiB total, {:5.2f} MiB anonymous, {:5.2f} MiB file-backed "
      "({:4.2f} MiB of it the umockdev harness; without it {:5.2f} MiB)\n",
      when, m.total_kib / 1024, m.anon_kib / 1024, m.file_kib / 1024, m.harness_kib / 1024,
      own / 1024);
  if (!mappings) return;
  for (const Mapping& mapping : m.mappings) {
    if (mapping.rss_kib == 0) continue;
    fmt::print("      {:<36} {:7.0f} KiB mapped, {:6.0f} KiB resident, {:5.0f} KiB anonymous\n",
               mapping.name, mapping.size_kib, mapping.rss_kib, mapping.anon_kib);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kmm-device-plugin-bench"};
  std::string plugin_binary;
  int devices = 256, allocations = 10000, events = 200;
  double idle_seconds = 60;
  bool mappings = false;
  app.add_option("--plugin", plugin_binary, "The kmm-device-plugin binary")->required();
  app.add_option("--devices", devices)->capture_default_str();
  app.add_option("--allocations", allocations)->capture_default_str();
  app.add_option("--events", events)->capture_default_str();
  app.add_option("--idle-seconds", idle_seconds)->capture_default_str();
  app.add_flag("--mappings", mappings,
               "Also print the resident memory of every mapping (file and permissions)");
  CLI11_PARSE(app, argc, argv);

  UMockdevTestbed* testbed = umockdev_testbed_new();
  std::vector<std::string> syspaths;
  for (int i = 0; i < devices; ++i) {
    const std::string name = fmt::format("kmm-ci-a{}", i);
    gchar* path =
        umockdev_testbed_add_device(testbed, "misc", name.c_str(), nullptr, "health", "1", "dev",
                                    "10:99", nullptr, "DEVNAME", ("/dev/" + name).c_str(), nullptr);
    syspaths.push_back(path);
    g_free(path);
  }
  kmm::testing::TempDir dir;
  const std::string config =
      dir.WriteFile("config.json",
                    R"({"ueventSource":"udev","resources":[{"resourceName":"example.com/kmm-ci-a",
          "match":{"subsystem":"misc","kernel":"kmm-ci-a*"},"health":{"attribute":"health"}}]})");
  const std::string plugin_dir = dir.Join("dp");
  std::filesystem::create_directories(plugin_dir);
  kmm::deviceplugin::testing::FakeKubelet kubelet(plugin_dir);
  if (!kubelet.Start()) return 1;

  const pid_t plugin = fork();
  if (plugin == 0) {
    execl(plugin_binary.c_str(), plugin_binary.c_str(), "--config", config.c_str(),
          "--device-plugin-dir", plugin_dir.c_str(), "--log-level", "warn", nullptr);
    _exit(127);
  }
  if (!kubelet.WaitForRegistrations(1, absl::Seconds(30))) {
    fmt::print(stderr, "the plugin did not register\n");
    kill(plugin, SIGKILL);
    return 1;
  }
  const std::string socket =
      plugin_dir + "/" + kmm::deviceplugin::SocketNameFor("example.com/kmm-ci-a");
  kmm::deviceplugin::testing::ListAndWatchClient watch(socket);
  if (!watch.WaitFor([&](const auto& l) { return l.devices_size() == devices; },
                     absl::Seconds(30))) {
    fmt::print(stderr, "the plugin did not advertise {} devices\n", devices);
    kill(plugin, SIGKILL);
    return 1;
  }
  fmt::print("Device plugin ({} emulated devices, the shipped binary):\n", devices);
  PrintMemory("after start:", MemoryOf(plugin), mappings);

  auto stub = v1beta1::DevicePlugin::NewStub(
      grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials()));
  std::vector<double> latencies;
  latencies.reserve(allocations);
  for (int i = 0; i < allocations; ++i) {
    v1beta1::AllocateRequest request;
    request.add_container_requests()->add_devices_ids(fmt::format("kmm-ci-a{}", i % devices));
    v1beta1::AllocateResponse response;
    grpc::ClientContext context;
    const auto start = Clock::now();
    const grpc::Status status = stub->Allocate(&context, request, &response);
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!status.ok()) {
      fmt::print(stderr, "Allocate failed: {}\n", status.error_message());
      return 1;
    }
  }
  PrintMemory(fmt::format("after {} Allocate:", allocations).c_str(), MemoryOf(plugin), mappings);
  fmt::print("  Allocate latency: p50 {:.0f} us, p99 {:.0f} us (target p99 <= 1000 us)\n",
             Percentile(latencies, 0.5), Percentile(latencies, 0.99));

  std::vector<double> event_latencies;
  for (int i = 0; i < events; ++i) {
    // Each device goes Unhealthy, then Healthy again: every event changes the list.
    const int device = (i / 2) % devices;
    const std::string& syspath = syspaths[device];
    const bool healthy = i % 2 == 1;
    const std::string expected =
        fmt::format("kmm-ci-a{}:{}", device, healthy ? "Healthy" : "Unhealthy");
    umockdev_testbed_set_attribute(testbed, syspath.c_str(), "health", healthy ? "1" : "0");
    const auto start = Clock::now();
    umockdev_testbed_uevent(testbed, syspath.c_str(), "change");
    if (!watch.WaitFor(
            [&](const auto& l) {
              const std::string text = "," + Describe(l) + ",";
              return text.find("," + expected + ",") != std::string::npos;
            },
            absl::Seconds(10))) {
      fmt::print(stderr, "no update for {}\n", expected);
      return 1;
    }
    event_latencies.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  fmt::print(
      "  uevent -> ListAndWatch update: p50 {:.2f} ms, p99 {:.2f} ms over {} events "
      "(target p99 <= 10 ms)\n",
      Percentile(event_latencies, 0.5), Percentile(event_latencies, 0.99), events);

  const double cpu_before = CpuSeconds(plugin);
  std::this_thread::sleep_for(std::chrono::duration<double>(idle_seconds));
  const double cpu_used = CpuSeconds(plugin) - cpu_before;
  fmt::print("  CPU while idle: {:.3f} s over {:.0f} s (target ~0: no polling)\n", cpu_used,
             idle_seconds);

  kill(plugin, SIGTERM);
  int status = 0;
  waitpid(plugin, &status, 0);
  g_object_unref(testbed);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
