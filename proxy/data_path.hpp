// kvproxy's data path: client connections send requests (pipelined or not); each key is taken from
// the URL and hashed onto the ring, and the request goes over that worker's pool of keep-alive
// connections to the node that owns it; the answer comes back with X-KV-Node.
//
// Each worker is one thread with its own I/O loop (net/io_loop.hpp: io_uring, or epoll where the
// kernel has no io_uring), its own pools and its own copy of the topology pointer: the hot path
// takes no lock. Heads of the common shape are read by the scanners in http/scan.hpp and
// relayed from where they arrived; anything else goes to Beast's parser (http/parser.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "net/io_loop.hpp"
#include "http/limits.hpp"
#include "proxy/state.hpp"

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
  // Throws std::runtime_error when the I/O loop asked for cannot be had.
  DataPath(State& state, ProxyOptions options, unsigned threads, AccessLog* log,
           net::IoLoop::Kind io = net::IoLoop::Kind::automatic);
  ~DataPath();
  const char* io_name() const noexcept;  // "io_uring" or "epoll"

  // Binds the client listener, before start(). Returns the bound port; throws
  // std::runtime_error("cannot listen on H:P: reason").
  std::uint16_t listen(const HostPort& address);
  // One thread per worker, serving until a drain ends.
  void start();
  // Thread-safe: stop accepting, close idle connections, let busy ones finish their request. What is
  // still open after `timeout` is cut off.
  void drain(std::chrono::milliseconds timeout);
  // Waits for every worker's thread to end (after drain()).
  void join();

  // Prometheus text for the proxy (also served on the admin listener). Thread-safe.
  std::string render_metrics() const;
  const ProxyCounters& counters() const noexcept { return counters_; }
  // Makes every worker take up the current topology now (not at its next request), so that the
  // previous one is released once its requests in flight finish. Thread-safe.
  void refresh_workers();

  struct Worker;  // public for the connection types in data_path.cpp; opaque to everyone else

 private:
  State& state_;
  const ProxyOptions opt_;
  AccessLog* log_;
  ProxyCounters counters_;
  int listen_fd_ = -1;
  std::atomic<std::size_t> open_{0};  // client connections, over every worker (maxconn)
  std::vector<std::unique_ptr<Worker>> workers_;
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
