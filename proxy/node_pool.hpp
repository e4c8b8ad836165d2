// A worker's connections to the nodes: for each node, a pool of idle keep-alive connections. An idle
// connection keeps a receive outstanding, so that a node closing it (or speaking unasked) is heard at
// once and the connection is never used; the warmest is taken first, and those that a burst left
// behind are closed once they idle past the pool's timeout. Touched only on the worker's thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/io_buffer.hpp"
#include "net/address.hpp"
#include "net/io_loop.hpp"
#include "proxy/cluster.hpp"
#include "proxy/options.hpp"

namespace kv::proxy {

class NodePools;
struct Pool;

// Whoever a connection carries a request for hears its results.
class NodeConnOwner {
 public:
  virtual void on_node_recv(long result) = 0;  // as net::ChannelHandler::on_recv
  virtual void on_node_sent(int result) = 0;
  virtual void on_node_connected(int result) = 0;

 protected:
  ~NodeConnOwner() = default;
};

struct NodeConn final : net::ChannelHandler {
  NodeConn(NodePools& p, std::shared_ptr<Pool> pl) : pools(p), pool(std::move(pl)) {}
  void on_recv(long result) override;
  void on_sent(int result) override;
  void on_connected(int result) override;
  void receive() {
    if (receiving) return;
    receiving = true;
    channel->recv(in);
  }

  NodePools& pools;
  std::shared_ptr<Pool> pool;  // a connection keeps its pool even if a reload drops the node meanwhile
  net::Channel* channel = nullptr;
  IoBuffer in;
  bool receiving = false, sending = false, connecting = false;
  NodeConnOwner* owner = nullptr;  // while it carries a request
  std::chrono::steady_clock::time_point idle_since;
};

struct Pool {
  std::shared_ptr<Backend> backend;
  std::optional<net::Endpoint> endpoint;
  // Taken from the back (the warmest first); the oldest, at the front, are closed once they have
  // idled past the pool's timeout.
  std::deque<std::unique_ptr<NodeConn>> idle;
};

class NodePools {
 public:
  NodePools(net::IoLoop& loop, const ProxyOptions& options) : loop_(loop), opt_(options) {}

  // The warmest idle connection to `b` that has not idled too long, or null.
  std::unique_ptr<NodeConn> take_idle(Backend& b);
  // A new connection to `b`, connecting; null with `error` set when that failed at once.
  std::unique_ptr<NodeConn> connect(Backend& b, std::string& error);
  // Back to its pool if it can carry another request (`reusable`: the answer allows keep-alive),
  // else closed.
  void release(std::unique_ptr<NodeConn> c, bool reusable);
  void close(std::unique_ptr<NodeConn> c);
  // An idle connection the node closed, or spoke on unasked.
  void drop_idle(NodeConn& c);

  // Closes the pools of nodes no longer in the topology (after a publish).
  void forget_retired();
  // Closes connections idle past the timeout; idle ones give their buffers back (the worker's tick).
  void sweep(std::chrono::steady_clock::time_point now);
  // Frees the connections closed since the last call: after a batch of completions, when none of
  // their code is on the stack any more.
  void collect() { dead_.clear(); }
  // The loop has stopped: nothing refers to the connections any more.
  void clear();

 private:
  Pool& pool(Backend& b);

  net::IoLoop& loop_;
  const ProxyOptions& opt_;
  std::vector<std::shared_ptr<Pool>> pools_;  // by Backend::slot
  std::vector<std::unique_ptr<NodeConn>> dead_;
};

}  // namespace kv::proxy
