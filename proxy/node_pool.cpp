#include "proxy/node_pool.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>

namespace kv::proxy {

void NodeConn::on_recv(long result) {
  receiving = false;
  if (owner) owner->on_node_recv(result);
  else pools.drop_idle(*this);  // idle in its pool: the node closed it, or spoke unasked
}

void NodeConn::on_sent(int result) {
  sending = false;
  if (owner) owner->on_node_sent(result);
}

void NodeConn::on_connected(int result) {
  connecting = false;
  if (owner) owner->on_node_connected(result);
}

Pool& NodePools::pool(Backend& b) {
  if (b.slot >= pools_.size()) pools_.resize(b.slot + 1);
  auto& p = pools_[b.slot];
  if (!p) {
    p = std::make_shared<Pool>();
    p->backend = b.shared_from_this();
    p->endpoint = net::endpoint_of(b.resolved);
  }
  return *p;
}

std::unique_ptr<NodeConn> NodePools::take_idle(Backend& b) {
  Pool& p = pool(b);
  auto& stats = b.stats;
  while (!p.idle.empty()) {
    auto c = std::move(p.idle.back());
    p.idle.pop_back();
    stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    if (loop_.now() - c->idle_since < opt_.pool_idle_timeout) return c;
    close(std::move(c));
  }
  return nullptr;
}

std::unique_ptr<NodeConn> NodePools::connect(Backend& b, std::string& error) {
  Pool& p = pool(b);
  if (!p.endpoint) {
    error = "connect: not an IP address: " + b.resolved;
    return nullptr;
  }
  const auto& ep = *p.endpoint;
  const int fd = ::socket(ep.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "connect: " + std::system_category().message(errno);
    return nullptr;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  b.stats.connects.fetch_add(1, std::memory_order_relaxed);
  auto c = std::make_unique<NodeConn>(*this, pools_[b.slot]);
  try {
    c->channel = loop_.open(fd, *c);
  } catch (const std::system_error& e) {
    error = std::string("connect: ") + e.what();
    return nullptr;
  }
  c->connecting = true;
  c->channel->connect(reinterpret_cast<const sockaddr*>(&ep.address), ep.size);
  return c;
}

void NodePools::release(std::unique_ptr<NodeConn> c, bool reusable) {
  Pool& p = *c->pool;
  if (reusable && c->in.empty() && !c->sending && !c->connecting && p.idle.size() < opt_.max_idle_per_node &&
      !p.backend->retired.load(std::memory_order_relaxed)) {
    c->idle_since = loop_.now();  // its buffer goes back to the block pool at the next sweep
    c->receive();                 // to hear at once if the node closes it
    p.idle.push_back(std::move(c));
    p.backend->stats.pool_idle.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  close(std::move(c));
}

void NodePools::close(std::unique_ptr<NodeConn> c) {
  c->owner = nullptr;
  c->channel->close(false);
  dead_.push_back(std::move(c));
}

void NodePools::drop_idle(NodeConn& c) {
  auto& idle = c.pool->idle;
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if (it->get() != &c) continue;
    c.pool->backend->stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    auto conn = std::move(*it);
    idle.erase(it);
    close(std::move(conn));
    return;
  }
}

void NodePools::forget_retired() {
  for (auto& p : pools_) {
    if (!p || !p->backend->retired.load()) continue;
    p->backend->stats.pool_idle.fetch_sub(static_cast<std::int64_t>(p->idle.size()));
    for (auto& c : p->idle) close(std::move(c));
    p->idle.clear();
    p.reset();
  }
}

void NodePools::sweep(std::chrono::steady_clock::time_point now) {
  for (auto& p : pools_) {
    if (!p) continue;
    // Connections that a burst left behind are closed once they idle past the timeout.
    while (!p->idle.empty() && now - p->idle.front()->idle_since >= opt_.pool_idle_timeout) {
      close(std::move(p->idle.front()));
      p->idle.pop_front();
      p->backend->stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    }
    for (auto& c : p->idle) c->in.release(loop_.blocks());
  }
}

void NodePools::clear() {
  for (auto& p : pools_)
    if (p) p->idle.clear();
  dead_.clear();
}

}  // namespace kv::proxy
