#include "proxy/cluster.hpp"

#include <boost/json.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <unordered_set>

#include "common/ring_change.hpp"
#include "http/policy.hpp"

namespace kv::proxy {

Backend::Backend(std::string i, HostPort a)
    : id(std::move(i)), address(std::move(a)), node_field(std::string(http::kNodeField) + ": " + id + "\r\n"), host(address.str()), slot([] {
        static std::atomic<std::uint32_t> next{0};
        return next.fetch_add(1, std::memory_order_relaxed);
      }()) {}

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

std::shared_ptr<Backend> Cluster::reusable(const std::string& id, const HostPort& address,
                                         const std::string& resolved) const {
  const auto current = topology();
  if (!current) return nullptr;
  auto match = [&](const std::vector<std::shared_ptr<Backend>>& list) -> std::shared_ptr<Backend> {
    for (const auto& b : list)
      if (b->id == id && b->address == address && b->resolved == resolved) return b;
    return nullptr;
  };
  if (auto b = match(current->backends)) return b;
  if (current->migration) return match(current->migration->backends);
  return nullptr;
}

std::vector<std::shared_ptr<Backend>> Cluster::backends_for(const Ring& ring, const RingConfig& config,
                                                          std::string_view source) const {
  std::vector<std::shared_ptr<Backend>> out;
  for (const auto& node : ring.nodes()) {
    std::size_t index = 0;  // position in the file, for messages
    while (index < config.nodes.size() && config.nodes[index].id != node.id) ++index;
    const std::string resolved = resolve(node.address, source, index);
    auto b = reusable(node.id, node.address, resolved);
    if (!b) {
      b = std::make_shared<Backend>(node.id, node.address);
      b->resolved = resolved;
    }
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<NodeView> node_views(const Topology& t) {
  std::vector<NodeView> out;
  const Migration* m = t.migration.get();
  for (std::size_t i = 0; i < t.backends.size(); ++i) {
    NodeView v{t.backends[i], t.ring->node(static_cast<std::uint32_t>(i)).weight, t.ownership[i], std::nullopt, false};
    if (m) {
      const int j = m->ring->find_node(t.backends[i]->id);
      v.next = j < 0 ? 0.0 : m->ownership[static_cast<std::size_t>(j)];
    }
    out.push_back(std::move(v));
  }
  if (m) {
    for (std::size_t j = 0; j < m->backends.size(); ++j) {
      if (std::find(t.backends.begin(), t.backends.end(), m->backends[j]) != t.backends.end()) continue;
      out.push_back({m->backends[j], m->ring->node(static_cast<std::uint32_t>(j)).weight, 0.0, m->ownership[j], true});
    }
  }
  return out;
}

std::shared_ptr<Topology> Cluster::prepare(RingConfig config, std::string_view source) const {
  validate_ring_config(config, source);
  auto t = std::make_shared<Topology>();
  t->ring = Ring::build(config);
  t->backends = backends_for(*t->ring, config, source);
  t->ownership = t->ring->ownership();
  t->fingerprint = ring_fingerprint(config);
  t->config = std::move(config);
  return t;
}

std::shared_ptr<Migration> Cluster::prepare_migration(RingConfig config, std::string yaml, Phase phase,
                                                    std::string_view source) const {
  validate_ring_config(config, source);
  auto m = std::make_shared<Migration>();
  m->change = {phase, topology()->fingerprint, ring_fingerprint(config), std::move(yaml)};
  m->ring = Ring::build(config);
  m->backends = backends_for(*m->ring, config, source);
  m->ownership = m->ring->ownership();
  m->config = std::move(config);
  return m;
}

std::uint64_t Cluster::publish(std::shared_ptr<Topology> next) {
  std::lock_guard lock(publish_mutex_);
  const auto current = topology();
  next->version = (current ? current->version : 0) + 1;
  auto all = [](const Topology& t) {
    std::unordered_set<const Backend*> set;
    for (const auto& b : t.backends) set.insert(b.get());
    if (t.migration)
      for (const auto& b : t.migration->backends) set.insert(b.get());
    return set;
  };
  const auto before = current ? all(*current) : std::unordered_set<const Backend*>{};
  const auto after = all(*next);
  std::vector<std::shared_ptr<Backend>> added;
  auto collect_added = [&](const std::vector<std::shared_ptr<Backend>>& list) {
    for (const auto& b : list)
      if (!before.count(b.get()) && std::find(added.begin(), added.end(), b) == added.end()) added.push_back(b);
  };
  collect_added(next->backends);
  if (next->migration) collect_added(next->migration->backends);
  if (current) {
    auto retire = [&](const std::vector<std::shared_ptr<Backend>>& list) {
      for (const auto& b : list)
        if (!after.count(b.get())) b->retired.store(true);
    };
    retire(current->backends);
    if (current->migration) retire(current->migration->backends);
    std::erase_if(retired_, [](const auto& w) { return w.expired(); });
    retired_.push_back(current);
  }
  const auto version = next->version;
  topology_.store(std::move(next), std::memory_order_release);
  version_.store(version, std::memory_order_release);
  if (on_new_backend)
    for (auto& b : added) on_new_backend(b);
  return version;
}

std::size_t Cluster::older_in_use() {
  std::lock_guard lock(publish_mutex_);
  std::erase_if(retired_, [](const auto& w) { return w.expired(); });
  std::size_t n = 0;
  for (const auto& w : retired_) n += static_cast<std::size_t>(w.use_count());
  return n;
}

bool parse_replica_health(std::string_view body, ReplicaHealth& out) {
  boost::system::error_code ec;
  const boost::json::value doc = boost::json::parse(boost::json::string_view(body.data(), body.size()), ec);
  if (ec || !doc.is_object()) return false;
  const auto& o = doc.get_object();
  const auto* state = o.if_contains("state");
  if (!state || !state->is_string()) return false;
  auto number = [](const boost::json::object& from, std::string_view name) -> std::uint64_t {
    const auto* v = from.if_contains(boost::json::string_view(name.data(), name.size()));
    if (!v) return 0;
    if (v->is_uint64()) return v->get_uint64();
    if (v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
    return 0;
  };
  ReplicaHealth r;
  r.state.assign(state->get_string().data(), state->get_string().size());
  r.tombstones = number(o, "tombstones");
  if (const auto* fl = o.if_contains("floors"); fl && fl->is_object()) r.floor_segments = number(fl->get_object(), "segments");
  if (const auto* ae = o.if_contains("anti_entropy"); ae && ae->is_object()) {
    const auto& a = ae->get_object();
    r.keys_behind = number(a, "keys_behind");
    r.keys_repaired = number(a, "keys_repaired");
    r.exchanges = number(a, "exchanges");
    r.failures = number(a, "failures");
    r.bytes = number(a, "bytes");
    r.peers_in_sync = number(a, "peers_in_sync");
    r.peers = number(a, "peers");
    r.tombstones_purged = number(a, "tombstones_purged");
    if (const auto* paused = a.if_contains("purges_paused"); paused && paused->is_string())
      r.purges_paused.assign(paused->get_string().data(), paused->get_string().size());
  }
  out = std::move(r);
  return true;
}

bool Cluster::check_result(Backend& b, bool ok, const std::string& what) {
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

void Cluster::passive_down(Backend& b, const std::string& why) {
  std::lock_guard lock(b.mutex);
  b.consecutive_ok = 0;
  if (!b.up.exchange(false)) return;
  b.last_change_at = std::chrono::system_clock::now();
  std::cerr << "kvproxy: node " << b.label() << " is DOWN (" << why << ")" << std::endl;
}

std::shared_ptr<Topology> with_migration(const Topology& t, std::shared_ptr<const Migration> migration) {
  auto next = std::make_shared<Topology>(t);
  next->migration = std::move(migration);
  return next;
}

std::shared_ptr<Topology> finished(const Migration& m) {
  auto next = std::make_shared<Topology>();
  next->config = m.config;
  next->fingerprint = m.fingerprint();
  next->ring = m.ring;
  next->backends = m.backends;
  next->ownership = m.ownership;
  return next;
}

}  // namespace kv::proxy
