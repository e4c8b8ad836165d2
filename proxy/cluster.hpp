// The cluster as the proxy sees it: the backends (one per node, with health and statistics) and the
// topology (ring + backends, and the ring change in progress) in use. A topology is immutable once published; workers keep their own
// shared_ptr to it and look at version() on each request, so the hot path takes no lock. A reload
// builds a new topology off to the side and swaps it in whole; requests in flight keep the old one.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/metrics.hpp"
#include "common/rebalance.hpp"
#include "common/ring.hpp"

namespace kv::proxy {

enum class ErrorClass : std::uint8_t { connect, timeout, bad_response, down, count_ };
std::string_view error_class_name(ErrorClass c) noexcept;

struct BackendStats {
  // Answers relayed from the node, by status class: 1xx..5xx.
  std::array<std::atomic<std::uint64_t>, 5> responses{};
  // Answers the proxy made itself because of this node (502, 503, 504), by cause.
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ErrorClass::count_)> errors{};
  metrics::Histogram latency;  // request read to response relayed, for relayed answers
  std::atomic<std::int64_t> pool_active{0};
  std::atomic<std::int64_t> pool_idle{0};
  std::atomic<std::uint64_t> connects{0};

  void response(unsigned status) noexcept {
    const unsigned c = status / 100;
    if (c >= 1 && c <= 5) responses[c - 1].fetch_add(1, std::memory_order_relaxed);
  }
  void error(ErrorClass c) noexcept { errors[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t requests() const noexcept;
};

// What a replicated kvnode's /health says of its copy (kvnode --ring: node/incarnation.hpp,
// node/anti_entropy.hpp): its state and its anti-entropy figures, summed over its peers. Empty
// `state`: the node says nothing of it.
struct ReplicaHealth {
  std::string state;  // serving, checking, recovering
  std::uint64_t keys_behind = 0, keys_repaired = 0, exchanges = 0, failures = 0, bytes = 0;
  std::uint64_t peers_in_sync = 0, peers = 0, tombstones = 0, tombstones_purged = 0, floor_segments = 0;
  std::string purges_paused;  // the ring change its purges are paused for ("": none; node/purge_pause.hpp)
};

// Reads a /health body; false (and `out` left alone) when it is no JSON object with a "state".
bool parse_replica_health(std::string_view body, ReplicaHealth& out);

struct Backend : std::enable_shared_from_this<Backend> {
  // One per node id and address, shared by every topology that has the node (its weight is the
  // ring's business), so health, pools and statistics carry over reloads and rebalances.
  Backend(std::string i, HostPort a);
  const std::string id;
  const HostPort address;
  const std::string node_field;  // "X-KV-Node: <id>\r\n", which the proxy adds to each of its answers
  const std::string host;        // address.str(), made once: the Host of every request to the node
  // Unique in the process and small (one per Backend ever made, counting up): where each worker
  // keeps its pool for this backend, in a vector.
  const std::uint32_t slot;
  std::string resolved;  // "ip:port" to connect to; set before publication, read-only after

  std::atomic<bool> up{true};
  // Answers quorum reads, as far as its last health check said: a replicated kvnode that is checking
  // or recovering its copy (node/incarnation.hpp) answers them 503, so a request asks it only when
  // the replicas that do make no quorum.
  std::atomic<bool> serving{true};
  std::atomic<bool> retired{false};  // no longer in the topology: checks stop, pools drain
  BackendStats stats;

  // Health-check bookkeeping: written by the checker and by passive marks (any worker), under mutex.
  mutable std::mutex mutex;
  std::uint32_t consecutive_ok = 0;
  std::uint32_t consecutive_fail = 0;
  std::string last_check = "none yet";
  std::chrono::system_clock::time_point last_check_at{};
  std::chrono::system_clock::time_point last_change_at = std::chrono::system_clock::now();
  ReplicaHealth replica;  // from the last check that answered

  std::string label() const { return id + " (" + address.str() + ")"; }
};

// A rebalance in progress (ring-rebalance apply, common/rebalance.hpp): the proxy holds the ring
// being moved to as well. Where each key's requests go in each phase is proxy/routing.hpp's.
using rebalance::Phase;

struct Migration {
  RingConfig config;
  rebalance::RingChange change;  // phase, from, to (this ring's fingerprint), and the ring's text
  std::shared_ptr<const Ring> ring;
  std::vector<std::shared_ptr<Backend>> backends;  // index = new ring node index
  std::vector<double> ownership;                   // index = new ring node index
  Phase phase() const noexcept { return change.phase; }
  const std::string& fingerprint() const noexcept { return change.to; }
};

struct Topology {
  std::uint64_t version = 0;
  RingConfig config;
  std::string fingerprint;  // ring_fingerprint(config)
  std::shared_ptr<const Ring> ring;
  std::vector<std::shared_ptr<Backend>> backends;  // index = ring node index
  std::vector<double> ownership;                   // index = ring node index
  std::shared_ptr<const Migration> migration;      // null: no rebalance in progress
};

// The topology `t` with `migration` in place of its own (null: none), not yet published.
std::shared_ptr<Topology> with_migration(const Topology& t, std::shared_ptr<const Migration> migration);
// The topology a finished rebalance leaves: its new ring alone, not yet published.
std::shared_ptr<Topology> finished(const Migration& m);

// A node as the stats page and metrics show it: every node of the ring in use, then the nodes only
// the rebalance's new ring has (joining).
struct NodeView {
  std::shared_ptr<Backend> backend;
  std::uint32_t weight = 0;          // in the ring in use (joining: in the new ring)
  double ownership = 0;              // of the ring in use; 0 when joining
  std::optional<double> next;        // during a rebalance: ownership in the new ring (0: leaving)
  bool joining = false;
};
std::vector<NodeView> node_views(const Topology& t);

struct HealthSettings {
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  std::uint32_t fall = 3;
  std::uint32_t rise = 2;
};

class Cluster {
 public:
  explicit Cluster(HealthSettings health) : health_(health) {}

  std::shared_ptr<const Topology> topology() const { return topology_.load(std::memory_order_acquire); }
  std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }
  const HealthSettings& health() const noexcept { return health_; }

  // Builds a topology from `config` (addresses resolved, ring built) without publishing it. Backends
  // whose id and address are unchanged are carried over, with their health and statistics.
  // Throws ConfigError when an address does not resolve.
  std::shared_ptr<Topology> prepare(RingConfig config, std::string_view source) const;
  // Builds the migration to `config` (text `yaml`) from the ring in use, in `phase`, without
  // publishing it. Backends are shared with the current topology where id and address match.
  std::shared_ptr<Migration> prepare_migration(RingConfig config, std::string yaml, Phase phase,
                                               std::string_view source) const;
  // Publishes a prepared topology; backends no longer in it (nor in its migration) are retired.
  // Returns the new version.
  std::uint64_t publish(std::shared_ptr<Topology> next);
  // Requests still using a topology older than the current one (each holds it while its request is
  // forwarded). 0 once every request that began before the last publish has finished; workers must
  // have been refreshed (DataPath::refresh_workers) for their idle references to go.
  std::size_t older_in_use();

  // Health transitions. Return true when the state changed (and log it).
  bool check_result(Backend& b, bool ok, const std::string& what);
  void passive_down(Backend& b, const std::string& why);

  // Called for each backend that a publish adds (to start its health checks).
  std::function<void(std::shared_ptr<Backend>)> on_new_backend;

  std::atomic<std::uint64_t> reloads_ok{0};
  std::atomic<std::uint64_t> reloads_failed{0};
  const std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

 private:
  HealthSettings health_;
  // Backends of the current topology and its migration, by "id@address", for reuse on prepare.
  std::shared_ptr<Backend> reusable(const std::string& id, const HostPort& address, const std::string& resolved) const;
  std::vector<std::shared_ptr<Backend>> backends_for(const Ring& ring, const RingConfig& config,
                                                     std::string_view source) const;

  mutable std::mutex publish_mutex_;
  std::vector<std::weak_ptr<const Topology>> retired_;  // published before the current one
  std::atomic<std::shared_ptr<const Topology>> topology_;
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace kv::proxy
