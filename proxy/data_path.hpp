// kvproxy's data path: the client listener and the workers that serve it. Client connections send
// requests (pipelined or not); each key is taken from the URL and hashed onto the ring, and the
// request goes over that worker's pool of keep-alive connections to the node that owns it; the
// answer comes back with X-KV-Node. The request path, layer by layer:
//   net/io_loop       completions of receives and sends (io_uring, or epoll)
//   proxy/worker      accept (net/listener's policy), deadlines, drain
//   proxy/client_conn one client: http::RequestReader, local answers, the steps of a route
//   proxy/routing     key + ring + rebalance phase -> the nodes to ask (pure)
//   proxy/node_exchange one request to one node: http::ResponseReader, deadlines, the one retry
//   proxy/node_pool   keep-alive connections per node
// Each worker is one thread with its own loop, pools and topology pointer: the path takes no lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/config.hpp"
#include "net/io_loop.hpp"
#include "net/listener.hpp"
#include "proxy/cluster.hpp"
#include "proxy/options.hpp"
#include "proxy/worker.hpp"

namespace kv::proxy {

class AccessLog;

class DataPath {
 public:
  // Throws std::runtime_error when the I/O loop asked for cannot be had.
  DataPath(Cluster& cluster, ProxyOptions options, unsigned threads, AccessLog* log,
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

  const ProxyCounters& counters() const noexcept { return counters_; }
  // Makes every worker take up the current topology now (not at its next request), so that the
  // previous one is released once its requests in flight finish. Thread-safe.
  void refresh_workers();

 private:
  const ProxyOptions opt_;
  ProxyCounters counters_;
  net::AcceptGate gate_;
  Shared shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace kv::proxy
