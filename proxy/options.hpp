// kvproxy's data-path settings (flags, or the proxy: section of ring.yaml) and the counters of the
// answers it makes without a node.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "http/limits.hpp"

namespace kv::proxy {

struct ProxyOptions {
  http::ServerLimits client;  // client deadlines and limits
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds response_timeout{10'000};  // request sent -> whole answer received
  std::uint64_t max_response_bytes = 64ull << 20;
  std::size_t max_key_bytes = 1024;
  // Idle connections kept per node, per worker. Above the most requests one node ever has in flight
  // at once, or every burst past it opens connections that are closed again right after.
  std::size_t max_idle_per_node = 1024;
  std::chrono::milliseconds pool_idle_timeout{30'000};  // under kvnode's idle timeout (60 s)
  std::size_t maxconn = 10'000;  // client connections at once; more wait in the accept backlog
  // Test only (a broken mode the linearizability test must catch): a ring change routed as before
  // per-key versions: untagged writes to both owners, read_new reads from the new owner alone.
  bool unsafe_unversioned = false;
};

// Counters for answers no node is behind (400 no key, the proxy's own /health and /metrics), and
// the client connections. Relaxed atomics: every worker adds, the stats read.
struct ProxyCounters {
  std::atomic<std::uint64_t> local_2xx{0}, local_4xx{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> rebalance_routed{0};  // requests for keys changing owner in a rebalance
  std::atomic<std::int64_t> client_open{0};
  std::atomic<std::uint64_t> client_total{0};
};

}  // namespace kv::proxy
