#include "state.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <iostream>
#include <map>
#include <unordered_set>

namespace kv::proxy {

std::string_view error_class_name(ErrorClass c) noexcept {
  switch (c) {
    case ErrorClass::connect: return "connect";
    case ErrorClass::timeout: return "timeout";
    case ErrorClass::bad_response: return "bad_response";
    case ErrorClass::down: return "down";
    default: return "other";
  }
}

std::uint64_t BackendStats::requests() const noexcept {
  std::uint64_t n = 0;
  for (const auto& r : responses) n += r.load(std::memory_order_relaxed);
  for (const auto& e : errors) n += e.load(std::memory_order_relaxed);
  return n;
}

namespace {

// Resolves a node address once, at load time: the data path never waits for DNS.
std::string resolve(const HostPort& a, std::string_view source, std::size_t index) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &res);
  if (rc != 0 || !res) {
    throw ConfigError(std::string(source) + ": nodes[" + std::to_string(index) + "].address: cannot resolve '" + a.host +
                      "': " + gai_strerror(rc));
  }
  char host[INET6_ADDRSTRLEN] = {};
  if (res->ai_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, host, sizeof host);
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, host, sizeof host);
  }
  freeaddrinfo(res);
  return HostPort{host, a.port}.str();
}

}  // namespace

std::shared_ptr<Topology> State::prepare(RingConfig config, std::string_view source) const {
  validate_ring_config(config, source);
  auto t = std::make_shared<Topology>();
  t->ring = Ring::build(config);
  const auto current = topology();
  std::map<std::string, std::shared_ptr<Backend>> old;
  if (current)
    for (const auto& b : current->backends) old[b->id + "@" + b->address.str()] = b;

  for (const auto& node : t->ring->nodes()) {
    std::size_t index = 0;  // position in the file, for messages
    while (index < config.nodes.size() && config.nodes[index].id != node.id) ++index;
    const std::string resolved = resolve(node.address, source, index);
    auto it = old.find(node.id + "@" + node.address.str());
    std::shared_ptr<Backend> b;
    if (it != old.end() && it->second->weight == node.weight && it->second->resolved == resolved) {
      b = it->second;
    } else {
      b = std::make_shared<Backend>(node.id, node.address, node.weight);
      b->resolved = resolved;
    }
    t->backends.push_back(std::move(b));
  }
  t->ownership = t->ring->ownership();
  t->config = std::move(config);
  return t;
}

std::uint64_t State::publish(std::shared_ptr<Topology> next) {
  std::lock_guard lock(publish_mutex_);
  const auto current = topology();
  next->version = (current ? current->version : 0) + 1;
  std::unordered_set<const Backend*> before, after;
  if (current)
    for (const auto& b : current->backends) before.insert(b.get());
  for (const auto& b : next->backends) after.insert(b.get());
  std::vector<std::shared_ptr<Backend>> added;
  for (const auto& b : next->backends)
    if (!before.count(b.get())) added.push_back(b);
  if (current)
    for (const auto& b : current->backends)
      if (!after.count(b.get())) b->retired.store(true);
  const auto version = next->version;
  topology_.store(std::move(next), std::memory_order_release);
  version_.store(version, std::memory_order_release);
  if (on_new_backend)
    for (auto& b : added) on_new_backend(b);
  return version;
}

bool State::check_result(Backend& b, bool ok, const std::string& what) {
  std::lock_guard lock(b.mutex);
  b.last_check = what;
  b.last_check_at = std::chrono::system_clock::now();
  if (ok) {
    b.consecutive_fail = 0;
    ++b.consecutive_ok;
    if (!b.up.load() && b.consecutive_ok >= health_.rise) {
      b.up.store(true);
      b.last_change_at = b.last_check_at;
      std::cerr << "kvproxy: node " << b.label() << " is UP (" << b.consecutive_ok << " good checks: " << what << ")"
                << std::endl;
      return true;
    }
    return false;
  }
  b.consecutive_ok = 0;
  ++b.consecutive_fail;
  if (b.up.load() && b.consecutive_fail >= health_.fall) {
    b.up.store(false);
    b.last_change_at = b.last_check_at;
    std::cerr << "kvproxy: node " << b.label() << " is DOWN (" << b.consecutive_fail << " failed checks: " << what << ")"
              << std::endl;
    return true;
  }
  return false;
}

void State::passive_down(Backend& b, const std::string& why) {
  std::lock_guard lock(b.mutex);
  b.consecutive_ok = 0;
  if (!b.up.exchange(false)) return;
  b.last_change_at = std::chrono::system_clock::now();
  std::cerr << "kvproxy: node " << b.label() << " is DOWN (" << why << ")" << std::endl;
}

}  // namespace kv::proxy
