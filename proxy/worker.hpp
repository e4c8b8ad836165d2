// One data-path worker: a thread with its own I/O loop (net/io_loop.hpp), its client connections,
// its pools of node connections and its own pointer to the topology in use, so that the request path
// takes no lock. It accepts under the listeners' policy (net/listener.hpp), looks at every deadline
// on its tick (every 10 ms; the sweep every http::kSweepInterval), and drains on request. Everything but the calls DataPath posts
// to it runs on its thread.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <thread>
#include <vector>

#include "common/version.hpp"
#include "net/io_loop.hpp"
#include "net/listener.hpp"
#include "proxy/cluster.hpp"
#include "proxy/node_pool.hpp"
#include "proxy/options.hpp"

namespace kv::proxy {

class AccessLog;
class ClientConn;
class Coordinator;

// What every worker of a data path shares, owned by the DataPath.
struct Shared {
  Cluster& cluster;
  const ProxyOptions& options;
  ProxyCounters& counters;
  AccessLog* log;         // null: no access log
  net::AcceptGate& gate;  // the client listener's: maxconn over every worker
  int listen_fd = -1;
  bool several_workers = false;
  TagMaker tags{};  // the tags of the versioned writes this process makes (common/version.hpp)

  // The floor of a new tag's counter: the wall clock in milliseconds, moved by
  // --test-clock-offset-ms (the multi-host tests skew proxies by minutes).
  std::uint64_t tag_floor() const noexcept {
    const auto now = std::chrono::system_clock::now().time_since_epoch() + options.clock_offset;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
    return ms > 0 ? static_cast<std::uint64_t>(ms) : 0;
  }
  Tag next_tag(const Tag& newest_seen) noexcept { return tags.next(newest_seen, tag_floor()); }
};

class Worker {
 public:
  Worker(Shared& shared, std::unique_ptr<net::IoLoop> loop);
  ~Worker();

  void run();  // on its own thread, until the loop stops
  // On the worker's thread (posted): stop accepting, close idle connections, let busy ones finish
  // their request; what is still open after `timeout` is cut off.
  void begin_drain(std::chrono::milliseconds timeout);

  // The topology for the next request; taken up anew only when a publish made a new one.
  const std::shared_ptr<const Topology>& current();
  void remove_client(ClientConn& c);
  // A coordinator whose client is done while some of its exchanges still run: ticked until they end,
  // then freed.
  void adopt(std::unique_ptr<Coordinator> c);
  // An idle coordinator: one kept from an earlier request (its lanes, buffers and exchanges keep
  // their memory), or a new one.
  std::unique_ptr<Coordinator> take_coordinator();

  Shared& shared;
  const ProxyOptions& opt;
  ProxyCounters& counters;
  Cluster& cluster;
  AccessLog* const log;
  const std::unique_ptr<net::IoLoop> loop_ptr;
  net::IoLoop& loop;
  NodePools pools;
  bool draining = false;
  unsigned read_one_turn = 0;  // --unsafe-read-one: the replica the next read asks
  std::thread thread;

 private:
  void tick();
  unsigned ticks_ = 0;
  void accepted(int fd);
  void set_listening(bool on);
  void maybe_listen();
  void sort_returned();
  void keep_idle(std::unique_ptr<Coordinator> c);

  std::list<std::unique_ptr<ClientConn>> clients_;
  // Closed connections, freed after the batch of completions that closed them (their code may still
  // be on the stack).
  std::vector<std::unique_ptr<ClientConn>> dead_clients_;
  std::vector<std::unique_ptr<Coordinator>> stragglers_;
  std::vector<std::unique_ptr<Coordinator>> idle_coordinators_;  // at most kIdleCoordinators
  std::vector<std::unique_ptr<Coordinator>> returned_;  // given back in this batch of completions
  std::shared_ptr<const Topology> topology_;
  std::uint64_t version_ = 0;
  bool listening_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
};

}  // namespace kv::proxy
