// kvnode's Prometheus counters (requests by route and status, latency by route, connections, storage
// errors, versioned writes superseded or refused) and the text GET /metrics renders from them and from the store's own gauges. Thread-safe:
// every update is a relaxed atomic add, so the request path never takes a lock to count.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/metrics.hpp"
#include "node/route.hpp"

namespace kv {

class Store;

class NodeMetrics {
 public:
  // The status codes counted apart; 0 stands for every other one (label "other").
  static constexpr std::array<unsigned, 11> kCodes = {200, 400, 404, 405, 408, 409, 413, 431, 500, 503, 0};

  // One request answered with `status`, `ns` after it was parsed.
  void count(Route r, unsigned status, std::uint64_t ns) noexcept;
  void connection_opened() noexcept { open_.fetch_add(1, std::memory_order_relaxed); accepted_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() noexcept { open_.fetch_sub(1, std::memory_order_relaxed); }
  void store_error() noexcept { store_errors_.fetch_add(1, std::memory_order_relaxed); }
  // Tagged writes (client writes with X-KV-Version, versioned ingest records) refused because their
  // tag holds another write: a bug somewhere, never a tie (common/version.hpp).
  void version_conflicts(std::uint64_t n = 1) noexcept { conflicts_.fetch_add(n, std::memory_order_relaxed); }
  // Tagged writes left out because the key held a newer tag, or the same write.
  void writes_superseded(std::uint64_t n = 1) noexcept { superseded_.fetch_add(n, std::memory_order_relaxed); }
  void writes_below_floor() noexcept { below_floor_.fetch_add(1, std::memory_order_relaxed); }
  // The Prometheus text (0.0.4) of these counters and of `store`'s keys, tombstones and commits,
  // then the section set here (anti-entropy's figures). Set it before serving.
  std::string render(Store& store) const;
  void set_section(std::function<std::string()> section) { section_ = std::move(section); }

 private:
  static constexpr std::size_t kRoutes = static_cast<std::size_t>(Route::count_);
  std::array<std::array<std::atomic<std::uint64_t>, kCodes.size()>, kRoutes> requests_{};
  std::array<metrics::Histogram, kRoutes> latency_{};
  std::atomic<std::int64_t> open_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> store_errors_{0};
  std::atomic<std::uint64_t> conflicts_{0};
  std::atomic<std::uint64_t> superseded_{0};
  std::atomic<std::uint64_t> below_floor_{0};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::function<std::string()> section_;
};

}  // namespace kv
