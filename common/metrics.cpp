#include "common/metrics.hpp"

#include <charconv>
#include <cstdio>

namespace kv::metrics {

void Histogram::observe_ns(std::uint64_t ns) noexcept {
  const double s = static_cast<double>(ns) * 1e-9;
  std::size_t i = 0;
  while (i < kLatencyBuckets.size() && s > kLatencyBuckets[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  char le[32];
  for (std::size_t i = 0; i <= kLatencyBuckets.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    if (i < kLatencyBuckets.size()) std::snprintf(le, sizeof le, "%g", kLatencyBuckets[i]);
    else std::snprintf(le, sizeof le, "+Inf");
    std::string l(labels);
    if (!l.empty()) l += ',';
    l += "le=\"";
    l += le;
    l += '"';
    sample(out, bucket, l, cumulative);
  }
  sample(out, std::string(name) + "_sum", labels, static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9);
  sample(out, std::string(name) + "_count", labels, count_.load(std::memory_order_relaxed));
}

double Histogram::quantile(double q) const noexcept {
  const std::uint64_t total = count();
  if (total == 0) return 0.0;
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total));
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    if (cumulative > rank) return kLatencyBuckets[i];
  }
  return kLatencyBuckets.back();
}

void header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(" ").append(buf, p).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  char buf[32];
  std::snprintf(buf, sizeof buf, " %.9g\n", value);
  out.append(buf);
}

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace kv::metrics
