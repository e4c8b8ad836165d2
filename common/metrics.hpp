// Lock-free counters and a latency histogram, rendered in the Prometheus text format (0.0.4).
// Hot-path updates are relaxed atomic adds; rendering reads a slightly torn but monotonic view,
// which Prometheus tolerates.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace kv::metrics {

// Latency buckets in seconds, 50 us to 10 s.
inline constexpr std::array<double, 16> kLatencyBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                           0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                           0.5,     1.0,    2.5,     10.0};

class Histogram {
 public:
  void observe_ns(std::uint64_t ns) noexcept;
  // Appends _bucket/_sum/_count samples for `name` with `labels` (e.g. `node="n1"`, may be empty).
  void render(std::string& out, std::string_view name, std::string_view labels) const;
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  // Estimated quantile (0..1) in seconds from the buckets (upper bound of the bucket that holds it).
  double quantile(double q) const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size() + 1> buckets_{};  // last is +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// "# HELP name help\n# TYPE name type\n"
void header(std::string& out, std::string_view name, std::string_view help, std::string_view type);
// "name{labels} value\n"
void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value);
void sample(std::string& out, std::string_view name, std::string_view labels, double value);

// Escapes a label value (backslash, quote, newline).
std::string label_value(std::string_view v);

}  // namespace kv::metrics
