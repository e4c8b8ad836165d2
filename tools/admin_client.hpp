// The typed admin clients of ring-rebalance apply: what it asks a kvproxy (where it stands, the next
// step of a ring change) and a kvnode (count, scan, ingest, drop ranges), with the retry policy they
// share and the exact messages an operator reads when one fails. The HTTP exchange is a parameter:
// apply passes HttpClient, tests a scripted server, so everything here but the socket is tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <stdexcept>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/config.hpp"
#include "common/rebalance.hpp"
#include "common/ring_change.hpp"
#include "net/http_client.hpp"
#include "tools/log.hpp"
#include "tools/resume.hpp"

namespace kv::tools {

using net::HttpClient;
using net::HttpResponse;

// A request that failed for good; what() is the operator's message, naming the server and request.
struct AdminError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One HTTP exchange: an answer of any status, or an exception when none came (HttpClient::request).
using Exchange = std::function<HttpResponse(std::string_view method, std::string_view target, std::string_view body,
                                            std::string_view content_type)>;
// Exchanges with `server` over one kept-alive HttpClient connection.
Exchange http_exchange(const HostPort& server, std::chrono::milliseconds timeout, const std::string& token);

// Every request apply makes is idempotent, so transient failures (no connection, 503 while a proxy
// drains) are retried a few times with a growing pause before giving up.
struct RetryPolicy {
  int attempts = 5;
  std::chrono::milliseconds pause{200};  // before attempt k + 1: k times this
  std::function<void(std::chrono::milliseconds)> sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  Log log;  // where a retried 503 is reported
};

// The most ranges sent in one request (the node accepts up to kMaxRangesPerRequest).
inline constexpr std::size_t kRangesPerRequest = 4096;

// A kvproxy's admin listener. Messages name it "proxy HOST:PORT".
class ProxyAdmin {
 public:
  ProxyAdmin(HostPort address, Exchange exchange, RetryPolicy retry = {});
  rebalance::Position position();
  // Answers once the proxy took the step (rebalance.hpp). `yaml`: NEW's text, for begin.
  void step(rebalance::Step step, std::string_view fingerprint, std::string_view yaml = {});
  const HostPort& address() const noexcept { return address_; }

 private:
  HostPort address_;
  std::string label_;
  Exchange exchange_;
  RetryPolicy retry_;
};

// One batch of a scan, in transfer.hpp's record format.
struct ScanBatch {
  std::string records;
  std::uint64_t count = 0;  // records in `records`
  bool done = false;        // the ranges scanned are done; otherwise go on after `cursor`
  std::string cursor;       // the stored key the next batch starts after (raw bytes); set unless done
};

// A kvnode's admin endpoints. Messages name it "node ID (HOST:PORT)".
class NodeAdmin {
 public:
  NodeAdmin(std::string id, HostPort address, Exchange exchange, RetryPolicy retry = {});
  // The keys `ranges` hold, counted kRangesPerRequest ranges at a time.
  std::uint64_t count(std::span<const HashRange> ranges);
  // The keys the node holds in `ranges` and their bytes as stored (POST /admin/count).
  struct Size {
    std::uint64_t keys = 0, bytes = 0;
  };
  Size measure(std::span<const HashRange> ranges);
  // At most `limit` records (and about `max_bytes`, at least one record) of `ranges`, at most
  // kRangesPerRequest of them, in stored key order, after the stored key `after` ("": from the start).
  // With `versions`: versioned records, tombstones included (common/transfer.hpp).
  ScanBatch scan(std::span<const HashRange> ranges, std::size_t limit, std::size_t max_bytes, std::string_view after,
                 bool versions);
  // Stores each record whose version is newer than what the node holds (plain records: only where
  // it holds nothing, value or tombstone); returns how many were stored.
  std::uint64_t ingest(std::string_view records, bool versions);
  // Deletes what `what` names in `ranges`, kRangesPerRequest ranges at a time.
  void drop(rebalance::Drop what, std::span<const HashRange> ranges);
  // The fingerprint of the ring the node runs on, when it runs on a ring of its own (kvnode --ring:
  // its /health names it), which its anti-entropy follows when the ring has replicas.
  std::optional<std::string> ring_running();
  // The node's tombstone purges as its /health tells; nullopt when it does not answer (asked once,
  // no retry) or is not a kvnode that purges by evidence.
  std::optional<PurgeState> purge_state();
  // POST /admin/purges (common/rebalance.hpp): pauses the node's tombstone purges for the ring change
  // `change` (true once it answered that none is under way), or resumes them. False when the node
  // does not answer (asked once); AdminError when it answers with an error.
  bool pause_purges(std::string_view change);
  bool resume_purges(std::string_view change);
  // POST /admin/ring: the node adopts the ring `yaml`; true when it is adopting it (false: it runs on
  // that ring already).
  bool adopt_ring(std::string_view yaml);
  // Waits until the node answers /health on the ring `fingerprint` (it adopted it) with its replica
  // state "serving" (none on a ring with replicas 1), up to `timeout`; throws AdminError naming what
  // it last said.
  void wait_serving(std::string_view fingerprint, std::chrono::milliseconds timeout);
  // Whether the node answers /health (200, in any state, on any ring) within `timeout`.
  bool up_within(std::chrono::milliseconds timeout);

  const std::string& id() const noexcept { return id_; }
  const HostPort& address() const noexcept { return address_; }

 private:
  // POST /admin/count over `ranges`, kRangesPerRequest at a time, summed; errors named by `label`.
  // `bytes`: the answers must give them too.
  Size sum_counts(const std::string& label, std::span<const HashRange> ranges, bool bytes);
  // Polls /health until it answers serving on the ring `fingerprint` or `timeout` passed; `last` says
  // what it last answered.
  bool poll_serving(std::string_view fingerprint, std::chrono::milliseconds timeout, std::string& last);

  std::string id_;
  HostPort address_;
  std::string label_;
  Exchange exchange_;
  RetryPolicy retry_;
};

// The nodes of one apply run: a client per node, made on first use, each keeping its connection.
class NodeAdmins {
 public:
  using Connect = std::function<Exchange(const HostPort&)>;
  NodeAdmins(Connect connect, RetryPolicy retry) : connect_(std::move(connect)), retry_(std::move(retry)) {}
  NodeAdmin& node(const std::string& id, const HostPort& address);

 private:
  Connect connect_;
  RetryPolicy retry_;
  std::map<std::string, NodeAdmin> nodes_;  // by id (check_change: one address per id)
};

}  // namespace kv::tools
