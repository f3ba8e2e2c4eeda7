// A small Prometheus registry for the operator: counter, gauge and histogram families with
// labels, rendered in the text exposition format 0.0.4 for the probe server's /metrics.
// Thread-safe. Updating a metric is one atomic operation; finding a labelled child takes a
// reader lock, so hot paths keep the reference WithLabels returns.
#ifndef KMM_OPERATOR_KUBE_METRICS_H_
#define KMM_OPERATOR_KUBE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kmm::kube {

// Only goes up; the process restarting is what resets it.
class Counter {
 public:
  struct Config {};
  explicit Counter(const Config& /*config*/) {}

  // Adds `amount`, which must not be negative (a negative amount is ignored).
  void Inc(double amount = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  struct Config {};
  explicit Gauge(const Config& /*config*/) {}

  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into fixed buckets (each counts values <= its upper bound, plus an
// implicit +Inf bucket) and keeps their sum.
class Histogram {
 public:
  struct Config {
    std::vector<double> upper_bounds;  // strictly increasing, without +Inf
  };
  explicit Histogram(const Config& config);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // one per bound, then +Inf (== count)
    double sum = 0.0;
  };
  // Taken without stopping writers: a concurrent Observe may be in the counts and not yet
  // in the sum.
  Snapshot Read() const;

 private:
  const std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // upper_bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
};

// Prometheus' default buckets, in seconds: 5 ms to 10 s.
std::vector<double> DefaultSecondsBuckets();

// What a Registry knows of every family, whatever its metric type.
class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  virtual ~MetricFamily() = default;
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  virtual std::string_view type() const = 0;
  // Appends "# HELP", "# TYPE" and every sample; nothing when the family has no children.
  virtual void Render(std::string& out) const = 0;

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
};

// All metrics of one name, one child per combination of label values.
template <typename Metric>
class Family final : public MetricFamily {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         typename Metric::Config config);

  // The child for these label values, one per label name in order, created on first use.
  // The reference lives as long as the registry. A wrong number of values is a programming
  // error and aborts, as Go's client panics.
  Metric& WithLabels(std::initializer_list<std::string_view> values);
  // The only child of a family without labels.
  Metric& Get() { return WithLabels({}); }

  const typename Metric::Config& config() const { return config_; }
  std::string_view type() const override;
  void Render(std::string& out) const override;

 private:
  const typename Metric::Config config_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// Owns every family; Render() is what /metrics serves. Registering a name again returns the
// family already registered when the type, labels (and buckets) are the same, so two
// components may share one; anything else (a clash, an invalid name, unsorted buckets) is a
// programming error and aborts with the reason.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& AddCounter(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(std::string_view name, std::string_view help,
                        std::vector<std::string> label_names = {});
  HistogramFamily& AddHistogram(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names,
                                std::vector<double> upper_bounds = DefaultSecondsBuckets());

  // Text exposition format 0.0.4, families sorted by name, children by label values.
  std::string Render() const;

 private:
  template <typename Metric>
  Family<Metric>& Add(std::string_view name, std::string_view help,
                      std::vector<std::string> label_names, typename Metric::Config config);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamily>, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// The controller and work queue metrics. Controller updates them when given these.
struct ControllerMetrics {
  explicit ControllerMetrics(Registry& registry);

  CounterFamily& reconcile_total;               // kmm_reconcile_total{controller,result}
  CounterFamily& reconcile_errors_total;        // kmm_reconcile_errors_total{controller}
  HistogramFamily& reconcile_duration_seconds;  // kmm_reconcile_duration_seconds{controller}
  GaugeFamily& workqueue_depth;                 // kmm_workqueue_depth{name}
};

// The API client's metrics, for the HTTP client and the watches to update.
struct ClientMetrics {
  explicit ClientMetrics(Registry& registry);

  CounterFamily& api_requests_total;    // kmm_api_requests_total{verb,code}
  CounterFamily& watch_restarts_total;  // kmm_watch_restarts_total{resource}
};

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_METRICS_H_
