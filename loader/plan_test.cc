#include "loader/plan.h"

#include <gtest/gtest.h>

#include "loader/modprobe_command.h"

namespace kmm::loader {
namespace {

LoaderConfig ConfigFor(const std::string& json) {
  absl::StatusOr<LoaderConfig> config = ParseLoaderConfig(json, "test");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.value_or(LoaderConfig{});
}

TEST(PlanLoad, ModuleWithParametersFromTheImageTree) {
  const LoaderConfig config =
      ConfigFor(R"({"moduleName":"kmm_ci_a","parameters":["devices=3","firmware=x.bin"]})");
  absl::StatusOr<LoadPlan> plan = PlanLoad(config, "6.1.0-56-amd64");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->root, "/opt");
  EXPECT_EQ(plan->kernel_version, "6.1.0-56-amd64");
  EXPECT_EQ(plan->modules, (std::vector<ModuleRequest>{{"kmm_ci_a", "devices=3 firmware=x.bin"}}));
  EXPECT_FALSE(plan->first_time);
}

TEST(PlanLoad, ArgsAreModprobeFlagsAndOptions) {
  const LoaderConfig config = ConfigFor(
      R"({"moduleName":"a","parameters":["x=1"],
          "args":{"load":["-vd","/mods","--first-time","y=2"],"unload":["-v"]}})");
  absl::StatusOr<LoadPlan> plan = PlanLoad(config, "k");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->root, "/mods");
  EXPECT_TRUE(plan->first_time);
  EXPECT_EQ(plan->modules, (std::vector<ModuleRequest>{{"a", "x=1 y=2"}}));
}

// Upstream's meaning: the list starts with moduleName, then what must load before it.
TEST(PlanLoad, ModulesLoadingOrderLoadsFromTheEndAndUnloadsFromTheStart) {
  const LoaderConfig config =
      ConfigFor(R"({"moduleName":"a","parameters":["p=1"],"modulesLoadingOrder":["a","b","c"]})");
  absl::StatusOr<LoadPlan> load = PlanLoad(config, "k");
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->modules, (std::vector<ModuleRequest>{{"c", ""}, {"b", ""}, {"a", "p=1"}}));
  absl::StatusOr<UnloadPlan> unload = PlanUnload(config, "k");
  ASSERT_TRUE(unload.ok()) << unload.status();
  EXPECT_EQ(unload->modules, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(PlanLoad, RawArgsReplaceEverythingElse) {
  const LoaderConfig config = ConfigFor(
      R"({"rawArgs":{"load":["-v","-d","/other","-S","6.2.0","mymod","a=1","b=2"],
                     "unload":["-rv","-d/other","mymod","helper"]}})");
  absl::StatusOr<LoadPlan> load = PlanLoad(config, "6.1.0");
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->root, "/other");
  EXPECT_EQ(load->kernel_version, "6.2.0");
  EXPECT_EQ(load->modules, (std::vector<ModuleRequest>{{"mymod", "a=1 b=2"}}));
  absl::StatusOr<UnloadPlan> unload = PlanUnload(config, "6.1.0");
  ASSERT_TRUE(unload.ok()) << unload.status();
  EXPECT_EQ(unload->root, "/other");
  EXPECT_EQ(unload->modules, (std::vector<std::string>{"mymod", "helper"}));
}

TEST(PlanLoad, RawArgsWithoutDirNameUseTheHostTree) {
  const LoaderConfig config =
      ConfigFor(R"({"rawArgs":{"load":["-a","x","y"],"unload":["--remove","x","y"]}})");
  absl::StatusOr<LoadPlan> load = PlanLoad(config, "k");
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->root, "/");
  EXPECT_EQ(load->modules, (std::vector<ModuleRequest>{{"x", ""}, {"y", ""}}));
}

TEST(PlanLoad, RefusesMisplacedRemovalAndMissingModule) {
  EXPECT_NE(PlanLoad(ConfigFor(R"({"rawArgs":{"load":["-r","x"],"unload":["-r","x"]}})"), "k")
                .status()
                .message()
                .find("config.rawArgs.load: contains -r"),
            std::string::npos);
  EXPECT_NE(PlanLoad(ConfigFor(R"({"rawArgs":{"load":["-v"],"unload":["-r","x"]}})"), "k")
                .status()
                .message()
                .find("names no module"),
            std::string::npos);
  EXPECT_NE(PlanUnload(ConfigFor(R"({"rawArgs":{"load":["x"],"unload":["x"]}})"), "k")
                .status()
                .message()
                .find("add -r"),
            std::string::npos);
  EXPECT_NE(PlanUnload(ConfigFor(R"({"moduleName":"a","args":{"unload":["b"]}})"), "k")
                .status()
                .message()
                .find("only flags are allowed"),
            std::string::npos);
}

TEST(ParseModprobeCommand, HandlesBundledAndLongFlags) {
  absl::StatusOr<ModprobeCommand> command =
      ParseModprobeCommand({"-rvq", "--dirname=/opt", "--set-version", "6.1", "m"}, "f");
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_TRUE(command->remove);
  EXPECT_EQ(command->dir_name, "/opt");
  EXPECT_EQ(command->kernel_version, "6.1");
  EXPECT_EQ(command->words, std::vector<std::string>{"m"});
}

TEST(ParseModprobeCommand, RefusesForceAndUnknownFlagsWithReasons) {
  absl::Status status = ParseModprobeCommand({"-v", "-f", "m"}, "config.args.load").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("config.args.load[1]: \"-f\": modprobe flag --force is not "
                                  "supported"),
            std::string::npos)
      << status;
  status = ParseModprobeCommand({"--bogus"}, "config.args.load").status();
  EXPECT_NE(status.message().find("unknown modprobe flag \"--bogus\""), std::string::npos)
      << status;
  status = ParseModprobeCommand({"-x"}, "config.args.load").status();
  EXPECT_NE(status.message().find("unknown modprobe flag \"-x\""), std::string::npos) << status;
  status = ParseModprobeCommand({"-d"}, "config.args.load").status();
  EXPECT_NE(status.message().find("needs a value"), std::string::npos) << status;
  status = ParseModprobeCommand({"--verbose=1"}, "config.args.load").status();
  EXPECT_NE(status.message().find("takes no value"), std::string::npos) << status;
}

}  // namespace
}  // namespace kmm::loader
