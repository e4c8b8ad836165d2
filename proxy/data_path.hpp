// kvproxy's data path: a client connection reads requests (pipelined or not), takes each key from
// the URL, finds its owner on the ring and forwards the request over that worker's pool of keep-alive
// connections to the node, then relays the answer with X-KV-Node. Each worker has its own pools and
// its own copy of the topology pointer: the hot path takes no lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "http_server.hpp"
#include "state.hpp"

namespace kv::proxy {

struct ProxyOptions {
  net::ReadLimits client;  // client deadlines and limits
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds response_timeout{10'000};  // request sent -> whole answer received
  std::uint64_t max_response_bytes = 64ull << 20;
  std::size_t max_key_bytes = 1024;
  // Idle connections kept per node, per worker. Above the most requests one node ever has in flight
  // at once, or every burst past it opens connections that are closed again right after.
  std::size_t max_idle_per_node = 1024;
  std::chrono::milliseconds pool_idle_timeout{30'000};  // under kvnode's idle timeout (60 s)
};

// Counters for answers no node is behind (400 no key, the proxy's own /health and /metrics).
struct ProxyCounters {
  std::atomic<std::uint64_t> local_2xx{0}, local_4xx{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> rebalance_routed{0};  // requests for keys changing owner in a rebalance
  std::atomic<std::int64_t> client_open{0};
  std::atomic<std::uint64_t> client_total{0};
};

class AccessLog;

class DataPath {
 public:
  DataPath(State& state, ProxyOptions options, net::Server& server, AccessLog* log);
  ~DataPath();

  net::SessionHandler handler();
  // Prometheus text for the proxy (also served on the admin listener).
  std::string render_metrics() const;
  const ProxyCounters& counters() const noexcept { return counters_; }
  // Makes every worker take up the current topology now (not at its next request), so that the
  // previous one is released once its requests in flight finish. Thread-safe.
  void refresh_workers();

 private:
  struct WorkerContext;
  net::asio::awaitable<void> session(net::Worker& worker, net::tcp::socket socket);

  State& state_;
  ProxyOptions opt_;
  AccessLog* log_;
  ProxyCounters counters_;
  std::vector<std::unique_ptr<WorkerContext>> workers_;
};

// One line per request, HAProxy httplog style, written with a single write() so lines from several
// workers never interleave.
class AccessLog {
 public:
  explicit AccessLog(const std::string& path);  // "-": stderr. Throws std::runtime_error.
  ~AccessLog();
  void write(std::string_view line) noexcept;

 private:
  int fd_ = -1;
  bool owned_ = false;
};

}  // namespace kv::proxy
