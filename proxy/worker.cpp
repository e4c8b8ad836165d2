#include "proxy/worker.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <iostream>
#include <system_error>

#include "http/limits.hpp"
#include "proxy/coordinator.hpp"
#include "net/address.hpp"
#include "proxy/client_conn.hpp"

namespace kv::proxy {

namespace {
constexpr std::size_t kIdleCoordinators = 256;  // kept for reuse; a burst's extra ones are freed
}  // namespace

Worker::Worker(Shared& s, std::unique_ptr<net::IoLoop> l)
    : shared(s), opt(s.options), counters(s.counters), cluster(s.cluster), log(s.log), loop_ptr(std::move(l)),
      loop(*loop_ptr), pools(loop, opt) {}

Worker::~Worker() = default;

const std::shared_ptr<const Topology>& Worker::current() {
  if (cluster.version() != version_ || !topology_) {
    topology_ = cluster.topology();
    version_ = topology_->version;
    pools.forget_retired();
  }
  return topology_;
}

void Worker::accepted(int fd) {
  if (fd < 0) {
    shared.gate.failed("kvproxy", -fd, loop.now());
    set_listening(false);
    return;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string peer;
  if (log) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) peer = net::peer_text(a);
  }
  shared.gate.opened();
  counters.client_open.fetch_add(1, std::memory_order_relaxed);
  counters.client_total.fetch_add(1, std::memory_order_relaxed);
  auto& c = *clients_.emplace_back(std::make_unique<ClientConn>(*this, std::move(peer)));
  c.self = std::prev(clients_.end());
  net::Channel* channel = nullptr;
  try {
    channel = loop.open(fd, c);
  } catch (const std::system_error& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    shared.gate.closed();
    counters.client_open.fetch_sub(1, std::memory_order_relaxed);
    clients_.erase(c.self);
    return;
  }
  // At maxconn, stop accepting: new clients wait in the kernel's backlog, not in our memory.
  if (shared.gate.full()) set_listening(false);
  c.start(channel);
}

void Worker::set_listening(bool on) {
  if (on == listening_) return;
  listening_ = on;
  loop.accepting(on);
}

void Worker::maybe_listen() {
  if (!listening_ && !draining && shared.listen_fd >= 0 && shared.gate.may_accept(loop.now())) set_listening(true);
}

void Worker::remove_client(ClientConn& c) {
  shared.gate.closed();
  counters.client_open.fetch_sub(1, std::memory_order_relaxed);
  const auto it = c.self;
  dead_clients_.push_back(std::move(*it));
  clients_.erase(it);
  maybe_listen();
  if (draining && clients_.empty()) loop.stop();
}

namespace {
constexpr std::chrono::milliseconds kTickInterval{10};
constexpr unsigned kTicksPerSweep = static_cast<unsigned>(http::kSweepInterval / kTickInterval);
}  // namespace

// Every kTickInterval: the clients' deadlines (a quorum's spares are due within a few ms); every
// http::kSweepInterval the rest of the sweep.

void Worker::tick() {
  const auto now = loop.now();
  const bool sweep = ++ticks_ % kTicksPerSweep == 0;
  for (auto it = clients_.begin(); it != clients_.end();) {
    ClientConn& c = **it;
    ++it;  // c may close, which takes it off the list
    if (c.deadline() <= now) c.on_deadline();
    else if (sweep) c.trim();
  }
  if (!sweep) return;
  for (std::size_t i = 0; i < stragglers_.size();) {
    Coordinator& c = *stragglers_[i];
    if (c.deadline() <= now) c.on_deadline();
    if (c.idle()) {
      auto done = std::move(stragglers_[i]);
      stragglers_[i] = std::move(stragglers_.back());
      stragglers_.pop_back();
      keep_idle(std::move(done));
    } else {
      ++i;
    }
  }
  pools.sweep(now);
  maybe_listen();
  if (draining && now >= drain_deadline_) {
    // Whatever is still in flight at the deadline is cut off.
    std::cerr << "kvproxy: drain deadline passed; closing " << clients_.size() << " connection(s)" << std::endl;
    loop.stop();
  }
}

// Sorted after the batch of completions (its code may be on the stack now): idle ones back to the
// pool, the others ticked until they are.
void Worker::adopt(std::unique_ptr<Coordinator> c) { returned_.push_back(std::move(c)); }

void Worker::sort_returned() {
  for (auto& c : returned_) {
    if (!c->idle()) stragglers_.push_back(std::move(c));
    else keep_idle(std::move(c));
  }
  returned_.clear();
}

// An idle coordinator back to the pool; freed when the pool is full.
void Worker::keep_idle(std::unique_ptr<Coordinator> c) {
  if (idle_coordinators_.size() < kIdleCoordinators) idle_coordinators_.push_back(std::move(c));
}

std::unique_ptr<Coordinator> Worker::take_coordinator() {
  if (idle_coordinators_.empty()) return std::make_unique<Coordinator>(*this);
  auto c = std::move(idle_coordinators_.back());
  idle_coordinators_.pop_back();
  return c;
}

void Worker::begin_drain(std::chrono::milliseconds timeout) {
  if (draining) return;
  draining = true;
  drain_deadline_ = loop.now() + timeout;
  set_listening(false);
  for (auto it = clients_.begin(); it != clients_.end();) {
    ClientConn& c = **it;
    ++it;
    if (c.idle()) c.close();  // busy ones close after their answer
  }
  if (clients_.empty()) loop.stop();
}

void Worker::run() {
  loop.set_listener(shared.listen_fd, shared.several_workers, [this](int fd) { accepted(fd); });
  maybe_listen();
  loop.run(
      kTickInterval, [this] { tick(); },
      [this] {
        dead_clients_.clear();
        sort_returned();
        pools.collect();
      });
  // The loop has stopped: nothing refers to these any more (the loop frees their channels).
  clients_.clear();
  returned_.clear();
  stragglers_.clear();
  idle_coordinators_.clear();
  pools.clear();
  dead_clients_.clear();
}

}  // namespace kv::proxy
