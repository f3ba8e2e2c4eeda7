// kmm-loader-bench: measures loading and unloading on a real kernel (run in the qemu node by
// bench/run). Two modes, so both are measured in the same boot:
//   inprocess --config F --iterations N   the Loader's Load()/Unload() calls alone, as
//                                         `kmm-loader run` pays them (context made once)
//   commands --iterations N --load "CMD" --unload "CMD"
//                                         whole processes (kmm-loader or modprobe), fork+exec
// Prints one "BENCH <name> load_us=<median> unload_us=<median> total_us=<median>" line.
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>

#include "common/cli.h"
#include "common/logging.h"
#include "fmt/format.h"
#include "loader/config.h"
#include "loader/loader.h"
#include "spdlog/spdlog.h"

namespace {

using Clock = std::chrono::steady_clock;

double MedianMicros(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Runs `command` (split on spaces) and returns its exit code.
int RunCommand(const std::vector<std::string>& command) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& word : command) argv.push_back(const_cast<char*>(word.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

void Report(const std::string& name, const std::vector<double>& load,
            const std::vector<double>& unload) {
  std::vector<double> total;
  for (size_t i = 0; i < load.size(); ++i) total.push_back(load[i] + unload[i]);
  fmt::print("BENCH {} iterations={} load_us={:.0f} unload_us={:.0f} total_us={:.0f}\n", name,
             load.size(), MedianMicros(load), MedianMicros(unload), MedianMicros(total));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kmm-loader-bench: load/unload timings on a real kernel", "kmm-loader-bench"};
  app.require_subcommand(1);
  app.fallthrough();  // before the subcommands, which inherit it
  int iterations = 50;
  std::string config_path, load_command, unload_command, name;
  CLI::App* inprocess = app.add_subcommand("inprocess", "Time Loader::Load/Unload in-process");
  inprocess->add_option("--config", config_path)->required();
  CLI::App* commands = app.add_subcommand("commands", "Time load/unload commands");
  commands->add_option("--load", load_command)->required();
  commands->add_option("--unload", unload_command)->required();
  commands->add_option("--name", name)->required();
  app.add_option("--iterations", iterations)->capture_default_str();
  if (int code = kmm::ParseCommandLine(app, argc, argv); code >= 0) return code;
  kmm::LogOptions quiet;
  quiet.level = "warn";
  (void)kmm::SetupLogging("kmm-loader-bench", quiet);

  std::vector<double> load, unload;
  auto micros = [](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count();
  };
  if (inprocess->parsed()) {
    auto config = kmm::loader::LoadLoaderConfigFile(config_path);
    if (!config.ok()) {
      spdlog::error("{}", config.status().message());
      return EXIT_FAILURE;
    }
    utsname uts{};
    uname(&uts);
    kmm::loader::Loader loader(*config, uts.release, {}, kmm::loader::MakeLibkmodBackend);
    for (int i = 0; i < iterations; ++i) {
      const auto start = Clock::now();
      auto live = loader.Load();
      const auto loaded = Clock::now();
      absl::Status unloaded = loader.Unload();
      const auto end = Clock::now();
      if (!live.ok() || !unloaded.ok()) {
        spdlog::error("iteration {}: {} / {}", i, live.status().message(), unloaded.message());
        return EXIT_FAILURE;
      }
      load.push_back(micros(loaded - start));
      unload.push_back(micros(end - loaded));
    }
    Report("kmm-loader-inprocess", load, unload);
    return EXIT_SUCCESS;
  }
  const std::vector<std::string> load_argv = Split(load_command);
  const std::vector<std::string> unload_argv = Split(unload_command);
  for (int i = 0; i < iterations; ++i) {
    const auto start = Clock::now();
    const int load_rc = RunCommand(load_argv);
    const auto loaded = Clock::now();
    const int unload_rc = RunCommand(unload_argv);
    const auto end = Clock::now();
    if (load_rc != 0 || unload_rc != 0) {
      spdlog::error("iteration {}: load exit {}, unload exit {}", i, load_rc, unload_rc);
      return EXIT_FAILURE;
    }
    load.push_back(micros(loaded - start));
    unload.push_back(micros(end - loaded));
  }
  Report(name, load, unload);
  return EXIT_SUCCESS;
}
