// What kvproxy reports about itself, from one place: a Snapshot of the cluster and the counters,
// taken once, then rendered as Prometheus text (/metrics, on both listeners), JSON (/stats.json) and
// the HTML stats page (/stats), so that the three always say the same thing.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/rebalance.hpp"
#include "proxy/cluster.hpp"
#include "proxy/options.hpp"

namespace kv::proxy {

inline constexpr std::size_t kErrorClasses = static_cast<std::size_t>(ErrorClass::count_);

// One node: every node of the ring in use, then those only the rebalance's new ring has (joining).
struct NodeRow {
  std::shared_ptr<const Backend> backend;  // its latency histogram, for Prometheus
  bool up = true;
  std::string since;       // when its state last changed, ISO 8601 UTC
  std::string last_check;  // what the last health check found
  std::uint32_t weight = 0;
  double ownership = 0;         // share of the key space in the ring in use (0 when joining)
  std::optional<double> next;   // during a rebalance: its share in the new ring (0: leaving)
  bool joining = false;
  std::uint64_t requests = 0;
  std::array<std::uint64_t, 5> responses{};  // relayed answers by class, 1xx..5xx
  std::array<std::uint64_t, kErrorClasses> errors{};
  double p50_ms = 0, p99_ms = 0;
  std::uint64_t pool_active = 0, pool_idle = 0, connects = 0;
  ReplicaHealth replica;  // empty state: the node says nothing of a replica
};

struct Snapshot {
  std::uint64_t version = 0;
  std::string fingerprint;
  rebalance::RingChange change;  // phase none: no rebalance (no yaml: not reported)
  std::uint64_t uptime_seconds = 0;
  std::size_t ring_nodes = 0, ring_points = 0;
  std::vector<NodeRow> nodes;
  std::uint64_t client_open = 0, client_total = 0, retries = 0, rebalance_routed = 0;
  std::uint64_t local_2xx = 0, local_4xx = 0, reloads_ok = 0, reloads_failed = 0;
  // Replicated keys (replicas > 1): requests by operation and result, reads that wrote back, failures
  // by cause, and the request latency (quorum_counters, for Prometheus's histogram).
  std::uint32_t replicas = 1;
  std::array<std::array<std::uint64_t, QuorumCounters::kResults>, QuorumCounters::kOps> quorum{};
  std::uint64_t write_backs = 0;
  std::uint64_t spares_failed = 0, spares_late = 0;
  std::uint64_t requeries = 0;
  std::array<std::uint64_t, QuorumCounters::kCauses> quorum_failures{};
  double quorum_p50_ms = 0, quorum_p99_ms = 0;
  const QuorumCounters* quorum_counters = nullptr;  // lives as long as the proxy
};

Snapshot snapshot(const Cluster& cluster, const ProxyCounters& counters);

std::string render_prometheus(const Snapshot& s);
std::string render_json(const Snapshot& s);
std::string render_html(const Snapshot& s);

// GET /admin/ring: the ring in use, each node with its ownership and state.
std::string render_ring_json(const Topology& t);

}  // namespace kv::proxy
