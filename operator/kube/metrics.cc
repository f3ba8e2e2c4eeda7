#include "operator/kube/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "fmt/format.h"

namespace kmm::kube {
namespace {

// Misuse of the registry is a bug in our code, found the first time the code runs. Written
// straight to stderr, as a failed CHECK would be: the logger may be filtered or buffered.
[[noreturn]] void MetricsMisuse(const std::string& message) {
  fmt::print(stderr, "kmm metrics: {}\n", message);
  std::abort();
}

bool IsValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Go's strconv.FormatFloat(v, 'g', -1, 64) spelling, as Prometheus writes values:
// the shortest text that reads back as the same double.
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

void AppendEscaped(std::string& out, std::string_view text, bool escape_quote) {
  for (const char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '"':
        out += escape_quote ? "\\\"" : "\"";
        break;
      default:
        out += c;
    }
  }
}

// `{a="x",b="y"}` with `extra` (already formatted, e.g. le="0.5") appended; empty when
// there are no labels at all.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra = {}) {
  if (names.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    AppendEscaped(out, values[i], /*escape_quote=*/true);
    out += '"';
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void AppendSample(std::string& out, std::string_view name, std::string_view labels,
                  std::string_view value) {
  out += name;
  out += labels;
  out += ' ';
  out += value;
  out += '\n';
}

void AppendChild(std::string& out, const MetricFamily& family,
                 const std::vector<std::string>& values, const Counter& counter) {
  AppendSample(out, family.name(), LabelText(family.label_names(), values),
               FormatValue(counter.Value()));
}

void AppendChild(std::string& out, const MetricFamily& family,
                 const std::vector<std::string>& values, const Gauge& gauge) {
  AppendSample(out, family.name(), LabelText(family.label_names(), values),
               FormatValue(gauge.Value()));
}

void AppendChild(std::string& out, const MetricFamily& family,
                 const std::vector<std::string>& values, const Histogram& histogram) {
  const Histogram::Snapshot snapshot = histogram.Read();
  const std::string bucket = family.name() + "_bucket";
  for (size_t i = 0; i < snapshot.cumulative_counts.size(); ++i) {
    const std::string le = i < snapshot.upper_bounds.size()
                               ? FormatValue(snapshot.upper_bounds[i])
                               : FormatValue(std::numeric_limits<double>::infinity());
    AppendSample(out, bucket, LabelText(family.label_names(), values, fmt::format("le=\"{}\"", le)),
                 std::to_string(snapshot.cumulative_counts[i]));
  }
  const std::string labels = LabelText(family.label_names(), values);
  AppendSample(out, family.name() + "_sum", labels, FormatValue(snapshot.sum));
  AppendSample(out, family.name() + "_count", labels,
               std::to_string(snapshot.cumulative_counts.back()));
}

bool SameConfig(const Counter::Config&, const Counter::Config&) { return true; }
bool SameConfig(const Gauge::Config&, const Gauge::Config&) { return true; }
bool SameConfig(const Histogram::Config& a, const Histogram::Config& b) {
  return a.upper_bounds == b.upper_bounds;
}

void Validate(std::string_view, const std::vector<std::string>&, const Counter::Config&) {}
void Validate(std::string_view, const std::vector<std::string>&, const Gauge::Config&) {}
void Validate(std::string_view name, const std::vector<std::string>& label_names,
              const Histogram::Config& config) {
  if (std::find(label_names.begin(), label_names.end(), "le") != label_names.end()) {
    MetricsMisuse(fmt::format("histogram {} may not have a label named \"le\"", name));
  }
  for (size_t i = 0; i < config.upper_bounds.size(); ++i) {
    const double bound = config.upper_bounds[i];
    if (std::isnan(bound) || std::isinf(bound) || (i > 0 && bound <= config.upper_bounds[i - 1])) {
      MetricsMisuse(
          fmt::format("histogram {}: bucket bounds must be finite and strictly increasing", name));
    }
  }
}

}  // namespace

void Counter::Inc(double amount) {
  if (amount < 0) return;
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(const Config& config)
    : upper_bounds_(config.upper_bounds),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(config.upper_bounds.size() + 1)) {}

void Histogram::Observe(double value) {
  // The first bucket whose bound is >= value; past the end is +Inf.
  const size_t index = static_cast<size_t>(
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  snapshot.cumulative_counts.reserve(upper_bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts.push_back(total);
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> DefaultSecondsBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

template <typename Metric>
Family<Metric>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                       typename Metric::Config config)
    : MetricFamily(std::move(name), std::move(help), std::move(label_names)),
      config_(std::move(config)) {
  // A family without labels has exactly one child; expose it (at zero) from the start.
  if (this->label_names().empty()) Get();
}

template <typename Metric>
Metric& Family<Metric>::WithLabels(std::initializer_list<std::string_view> values) {
  if (values.size() != label_names().size()) {
    MetricsMisuse(fmt::format("{} has {} labels, given {} values", name(), label_names().size(),
                              values.size()));
  }
  std::vector<std::string> key(values.begin(), values.end());
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = children_.find(key); it != children_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& child = children_[std::move(key)];
  if (child == nullptr) child = std::make_unique<Metric>(config_);
  return *child;
}

template <typename Metric>
std::string_view Family<Metric>::type() const {
  if constexpr (std::is_same_v<Metric, Counter>) {
    return "counter";
  } else if constexpr (std::is_same_v<Metric, Gauge>) {
    return "gauge";
  } else {
    static_assert(std::is_same_v<Metric, Histogram>);
    return "histogram";
  }
}

template <typename Metric>
void Family<Metric>::Render(std::string& out) const {
  absl::ReaderMutexLock lock(&mu_);
  if (children_.empty()) return;
  out += "# HELP ";
  out += name();
  out += ' ';
  AppendEscaped(out, help(), /*escape_quote=*/false);
  out += "\n# TYPE ";
  out += name();
  out += ' ';
  out += type();
  out += '\n';
  for (const auto& [values, child] : children_) AppendChild(out, *this, values, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

template <typename Metric>
Family<Metric>& Registry::Add(std::string_view name, std::string_view help,
                              std::vector<std::string> label_names,
                              typename Metric::Config config) {
  if (!IsValidName(name, /*allow_colon=*/true)) {
    MetricsMisuse(fmt::format("invalid metric name \"{}\"", name));
  }
  for (const std::string& label : label_names) {
    if (!IsValidName(label, /*allow_colon=*/false) || label.starts_with("__")) {
      MetricsMisuse(fmt::format("{}: invalid label name \"{}\"", name, label));
    }
  }
  Validate(name, label_names, config);

  absl::MutexLock lock(&mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    auto* existing = dynamic_cast<Family<Metric>*>(it->second.get());
    if (existing == nullptr || existing->label_names() != label_names ||
        !SameConfig(existing->config(), config)) {
      MetricsMisuse(
          fmt::format("{} registered twice with different types, labels or buckets", name));
    }
    return *existing;
  }
  auto family = std::make_unique<Family<Metric>>(std::string(name), std::string(help),
                                                 std::move(label_names), std::move(config));
  Family<Metric>& result = *family;
  families_.emplace(std::string(name), std::move(family));
  return result;
}

CounterFamily& Registry::AddCounter(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names) {
  return Add<Counter>(name, help, std::move(label_names), {});
}

GaugeFamily& Registry::AddGauge(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names) {
  return Add<Gauge>(name, help, std::move(label_names), {});
}

HistogramFamily& Registry::AddHistogram(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> upper_bounds) {
  return Add<Histogram>(name, help, std::move(label_names), {std::move(upper_bounds)});
}

std::string Registry::Render() const {
  std::string out;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [name, family] : families_) family->Render(out);
  return out;
}

ControllerMetrics::ControllerMetrics(Registry& registry)
    : reconcile_total(registry.AddCounter("kmm_reconcile_total",
                                          "Reconciles per controller and result (success, error, "
                                          "requeue, requeue_after).",
                                          {"controller", "result"})),
      reconcile_errors_total(registry.AddCounter(
          "kmm_reconcile_errors_total", "Reconciles that returned an error.", {"controller"})),
      reconcile_duration_seconds(registry.AddHistogram("kmm_reconcile_duration_seconds",
                                                       "Time taken by one reconcile, in seconds.",
                                                       {"controller"})),
      workqueue_depth(registry.AddGauge("kmm_workqueue_depth",
                                        "Keys waiting in a controller's work queue.", {"name"})) {}

ClientMetrics::ClientMetrics(Registry& registry)
    : api_requests_total(registry.AddCounter(
          "kmm_api_requests_total", "Kubernetes API requests by verb and HTTP status code.",
          {"verb", "code"})),
      watch_restarts_total(registry.AddCounter("kmm_watch_restarts_total",
                                               "Watches started again after they ended or failed.",
                                               {"resource"})) {}

}  // namespace kmm::kube
