// kvproxy's data-path settings (flags, or the proxy: section of ring.yaml) and the counters of the
// answers it makes without a node.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <cstddef>
#include <cstdint>

#include <array>
#include <string_view>

#include "common/metrics.hpp"
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
  // replicas > 1: a step's queries go to a majority of the replicas (the first ones up, in placement
  // order); the others, the spares, are asked when one of those fails or after this long without a
  // decision. 0: every replica is asked at once.
  std::chrono::milliseconds spare_after{20};
  // Test only (a broken mode the linearizability test must catch): a ring change routed as before
  // per-key versions: untagged writes to both owners, read_new reads from the new owner alone.
  bool unsafe_unversioned = false;
  // Test only (a broken mode the linearizability test must catch): a replicated key's read is
  // answered by the first replica that answers, with no majority and no write-back.
  bool unsafe_read_one = false;
  // Test only (a broken mode the linearizability test must catch): during a ring change a replicated
  // key whose replica set changes is asked at its new set alone, a majority of it a quorum.
  bool unsafe_new_set_only = false;
  // "Authorization: Bearer <token>\r\n" for the nodes' /replica/ endpoints (--node-token-file), or empty.
  std::string node_auth;
  // Test only (--test-clock-offset-ms): added to every wall clock reading that goes into a tag, as a
  // host whose clock is off would.
  std::chrono::milliseconds clock_offset{0};
};

// Requests on replicated keys (replicas > 1), coordinated over their replica sets.
enum class QuorumOp : std::uint8_t { get, put, del, count_ };
enum class QuorumResult : std::uint8_t { ok, refused, failed, count_ };
// Why a request found no majority: what the replicas it missed had in common (mixed: not one thing).
enum class QuorumCause : std::uint8_t { down, connect, timeout, bad_response, node_error, below_floor, mixed, count_ };
std::string_view quorum_op_name(QuorumOp o) noexcept;
std::string_view quorum_result_name(QuorumResult r) noexcept;
std::string_view quorum_cause_name(QuorumCause c) noexcept;

struct QuorumCounters {
  static constexpr std::size_t kOps = static_cast<std::size_t>(QuorumOp::count_);
  static constexpr std::size_t kResults = static_cast<std::size_t>(QuorumResult::count_);
  static constexpr std::size_t kCauses = static_cast<std::size_t>(QuorumCause::count_);
  std::array<std::array<std::atomic<std::uint64_t>, kResults>, kOps> requests{};
  std::atomic<std::uint64_t> write_backs{0};  // reads that wrote the newest back before answering
  std::atomic<std::uint64_t> spares_failed{0};  // requests that asked their spares: an asked replica failed
  std::atomic<std::uint64_t> spares_late{0};    // requests that asked their spares: no decision in time
  std::atomic<std::uint64_t> requeries{0};      // reads and removes a purged tombstone left undecided: asked again
  std::array<std::atomic<std::uint64_t>, kCauses> failures{};
  metrics::Histogram latency;  // request read to answer made, every result

  void count(QuorumOp o, QuorumResult r) noexcept {
    requests[static_cast<std::size_t>(o)][static_cast<std::size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  void failure(QuorumCause c) noexcept { failures[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed); }
};

// Counters for answers no node is behind (400 no key, the proxy's own /health and /metrics), and
// the client connections. Relaxed atomics: every worker adds, the stats read.
struct ProxyCounters {
  std::atomic<std::uint64_t> local_2xx{0}, local_4xx{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> rebalance_routed{0};  // requests for keys changing owner in a rebalance
  std::atomic<std::int64_t> client_open{0};
  std::atomic<std::uint64_t> client_total{0};
  QuorumCounters quorum;
};

}  // namespace kv::proxy
