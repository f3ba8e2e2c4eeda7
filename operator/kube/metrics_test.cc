#include "operator/kube/metrics.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace kmm::kube {
namespace {

TEST(Registry, RendersCountersGaugesAndHistogramsInTextFormat) {
  Registry registry;
  CounterFamily& requests =
      registry.AddCounter("test_requests_total", "Requests served.", {"verb", "code"});
  requests.WithLabels({"GET", "200"}).Inc(3);
  requests.WithLabels({"PUT", "500"}).Inc(0.5);
  registry.AddGauge("test_temperature_celsius", "Current temperature.").Get().Set(-2.5);
  HistogramFamily& latency =
      registry.AddHistogram("test_latency_seconds", "Request latency.", {"op"}, {0.1, 1});
  Histogram& reads = latency.WithLabels({"read"});
  reads.Observe(0.0625);
  reads.Observe(0.5);
  reads.Observe(1);  // on a bound: counts in that bucket
  reads.Observe(7);

  EXPECT_EQ(registry.Render(),
            "# HELP test_latency_seconds Request latency.\n"
            "# TYPE test_latency_seconds histogram\n"
            "test_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 1\n"
            "test_latency_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
            "test_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
            "test_latency_seconds_sum{op=\"read\"} 8.5625\n"
            "test_latency_seconds_count{op=\"read\"} 4\n"
            "# HELP test_requests_total Requests served.\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total{verb=\"GET\",code=\"200\"} 3\n"
            "test_requests_total{verb=\"PUT\",code=\"500\"} 0.5\n"
            "# HELP test_temperature_celsius Current temperature.\n"
            "# TYPE test_temperature_celsius gauge\n"
            "test_temperature_celsius -2.5\n");
}

TEST(Registry, EscapesLabelValuesAndHelpText) {
  Registry registry;
  registry.AddCounter("test_total", "A \\ backslash,\na newline and \"quotes\".", {"path"})
      .WithLabels({"C:\\dir \"x\"\nnext"})
      .Inc();
  EXPECT_EQ(registry.Render(),
            "# HELP test_total A \\\\ backslash,\\na newline and \"quotes\".\n"
            "# TYPE test_total counter\n"
            "test_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
}

TEST(Registry, HistogramWithoutLabelsHasOnlyTheLeLabel) {
  Registry registry;
  registry.AddHistogram("test_seconds", "Durations.", {}, {1}).Get().Observe(0.25);
  EXPECT_EQ(registry.Render(),
            "# HELP test_seconds Durations.\n"
            "# TYPE test_seconds histogram\n"
            "test_seconds_bucket{le=\"1\"} 1\n"
            "test_seconds_bucket{le=\"+Inf\"} 1\n"
            "test_seconds_sum 0.25\n"
            "test_seconds_count 1\n");
}

TEST(Registry, FamilyWithoutLabelsIsExposedAtZeroFromTheStart) {
  Registry registry;
  registry.AddCounter("test_starts_total", "Starts.");
  EXPECT_EQ(registry.Render(),
            "# HELP test_starts_total Starts.\n"
            "# TYPE test_starts_total counter\n"
            "test_starts_total 0\n");
}

TEST(Registry, LabelledFamilyWithoutChildrenIsLeftOut) {
  Registry registry;
  registry.AddCounter("test_total", "Nothing yet.", {"kind"});
  EXPECT_EQ(registry.Render(), "");
}

TEST(Registry, SpecialValuesUsePrometheusSpelling) {
  Registry registry;
  GaugeFamily& gauges = registry.AddGauge("test_value", "Values.", {"case"});
  gauges.WithLabels({"inf"}).Set(std::numeric_limits<double>::infinity());
  gauges.WithLabels({"minus_inf"}).Set(-std::numeric_limits<double>::infinity());
  gauges.WithLabels({"nan"}).Set(std::numeric_limits<double>::quiet_NaN());
  gauges.WithLabels({"big"}).Set(1e21);
  gauges.WithLabels({"small"}).Set(0.001);
  EXPECT_EQ(registry.Render(),
            "# HELP test_value Values.\n"
            "# TYPE test_value gauge\n"
            "test_value{case=\"big\"} 1e+21\n"
            "test_value{case=\"inf\"} +Inf\n"
            "test_value{case=\"minus_inf\"} -Inf\n"
            "test_value{case=\"nan\"} NaN\n"
            "test_value{case=\"small\"} 0.001\n");
}

TEST(Registry, RegisteringTheSameFamilyAgainReturnsTheFirst) {
  Registry registry;
  CounterFamily& first = registry.AddCounter("test_total", "Help.", {"a"});
  CounterFamily& second = registry.AddCounter("test_total", "Help.", {"a"});
  EXPECT_EQ(&first, &second);
  EXPECT_EQ(&first.WithLabels({"x"}), &second.WithLabels({"x"}));
}

TEST(Counter, IgnoresNegativeIncrements) {
  Counter counter(Counter::Config{});
  counter.Inc(2);
  counter.Inc(-1);
  EXPECT_EQ(counter.Value(), 2);
}

TEST(Counter, ConcurrentIncrementsAreAllCounted) {
  Registry registry;
  CounterFamily& family = registry.AddCounter("test_total", "Help.", {"worker"});
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&family] {
      for (int i = 0; i < 10000; ++i) family.WithLabels({"shared"}).Inc();
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(family.WithLabels({"shared"}).Value(), 40000);
}

TEST(Registry, WrongNumberOfLabelValuesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry registry;
  CounterFamily& family = registry.AddCounter("test_total", "Help.", {"a", "b"});
  EXPECT_DEATH(family.WithLabels({"only-one"}), "test_total has 2 labels, given 1 values");
}

TEST(ControllerMetrics, RegistersTheDocumentedNames) {
  Registry registry;
  ControllerMetrics controller(registry);
  ClientMetrics client(registry);
  controller.reconcile_total.WithLabels({"module", "success"}).Inc();
  controller.reconcile_errors_total.WithLabels({"module"}).Inc(2);
  controller.workqueue_depth.WithLabels({"module"}).Set(4);
  client.api_requests_total.WithLabels({"GET", "200"}).Inc();
  client.watch_restarts_total.WithLabels({"nodes"}).Inc();
  const std::string text = registry.Render();
  for (const char* line : {"# TYPE kmm_reconcile_total counter\n",
                           "kmm_reconcile_total{controller=\"module\",result=\"success\"} 1\n",
                           "kmm_reconcile_errors_total{controller=\"module\"} 2\n",
                           "kmm_workqueue_depth{name=\"module\"} 4\n",
                           "kmm_api_requests_total{verb=\"GET\",code=\"200\"} 1\n",
                           "kmm_watch_restarts_total{resource=\"nodes\"} 1\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
  }
  // A second controller shares the families.
  ControllerMetrics another(registry);
  EXPECT_EQ(&another.reconcile_total, &controller.reconcile_total);
}

}  // namespace
}  // namespace kmm::kube
