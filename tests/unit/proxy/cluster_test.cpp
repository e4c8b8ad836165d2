// proxy/cluster.hpp: topologies built off to the side and published with a version that counts up;
// backends carried over reloads and rebalances with their statistics and health, retired when their
// node leaves; the health transitions (fall, rise, passive marks) and what they log; the views the
// stats are made from; a rebalance's topologies (with_migration, finished). No sockets.
#include <catch2/catch.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/ring_change.hpp"
#include "proxy/cluster.hpp"

using namespace kv;
using namespace kv::proxy;

namespace {

NodeConfig node(const std::string& id, std::uint16_t port, std::uint32_t weight = 1) {
  return {id, {"127.0.0.1", port}, weight, {}};
}

RingConfig ring(std::vector<NodeConfig> nodes) {
  RingConfig c;
  c.vnodes = 256;
  c.nodes = std::move(nodes);
  return c;
}

// n1..nN on 127.0.0.1:9001.., weight 1.
RingConfig ring_of(int n) {
  std::vector<NodeConfig> nodes;
  for (int i = 1; i <= n; ++i) nodes.push_back(node("n" + std::to_string(i), std::uint16_t(9000 + i)));
  return ring(std::move(nodes));
}

std::shared_ptr<Backend> backend(const Topology& t, const std::string& id) {
  for (const auto& b : t.backends)
    if (b->id == id) return b;
  if (t.migration)
    for (const auto& b : t.migration->backends)
      if (b->id == id) return b;
  FAIL("no backend " << id);
  return nullptr;
}

std::string ids(const std::vector<std::shared_ptr<Backend>>& list) {
  std::string out;
  for (const auto& b : list) out += (out.empty() ? "" : " ") + b->id;
  return out;
}

std::string ids(const std::vector<NodeView>& views) {
  std::string out;
  for (const auto& v : views) out += (out.empty() ? "" : " ") + v.backend->id + (v.joining ? "+" : "");
  return out;
}

// Everything written to std::cerr while it lives.
struct CaptureCerr {
  std::ostringstream text;
  std::streambuf* old = std::cerr.rdbuf(text.rdbuf());
  ~CaptureCerr() { std::cerr.rdbuf(old); }
  std::string take() {
    std::string s = text.str();
    text.str("");
    return s;
  }
};

std::string last_check(const Backend& b) {
  std::lock_guard lock(b.mutex);
  return b.last_check;
}

std::chrono::system_clock::time_point last_change(const Backend& b) {
  std::lock_guard lock(b.mutex);
  return b.last_change_at;
}

}  // namespace

TEST_CASE("prepare builds a topology without publishing it; each publish counts the version up from 1", "[cluster]") {
  Cluster c{HealthSettings{}};
  CHECK(c.version() == 0);
  CHECK(c.topology() == nullptr);

  const RingConfig config = ring({node("n2", 9002), node("n1", 9001, 2), node("n3", 9003)});
  auto t = c.prepare(config, "ring.yaml");
  CHECK(t->version == 0);
  CHECK(c.topology() == nullptr);  // not published
  CHECK(c.version() == 0);
  CHECK(t->fingerprint == ring_fingerprint(config));
  CHECK(t->migration == nullptr);
  CHECK(ids(t->backends) == "n1 n2 n3");  // ring order: by id, whatever the file's order
  CHECK(t->backends[0]->resolved == "127.0.0.1:9001");
  CHECK(t->backends[0]->address == HostPort{"127.0.0.1", 9001});
  CHECK(t->backends[1]->resolved == "127.0.0.1:9002");
  CHECK(t->ring->point_count() == (2 + 1 + 1) * 256);
  REQUIRE(t->ownership.size() == 3);
  CHECK(t->ownership == t->ring->ownership());
  CHECK(std::accumulate(t->ownership.begin(), t->ownership.end(), 0.0) == Approx(1.0));
  CHECK(t->config.nodes.size() == 3);

  CHECK(c.publish(t) == 1);
  CHECK(c.version() == 1);
  CHECK(c.topology() == t);
  CHECK(t->version == 1);

  CHECK(c.publish(c.prepare(config, "ring.yaml")) == 2);
  CHECK(c.publish(c.prepare(ring_of(2), "ring.yaml")) == 3);
  CHECK(c.version() == 3);
  CHECK(c.topology()->version == 3);
  CHECK(ids(c.topology()->backends) == "n1 n2");
}

TEST_CASE("a reload keeps the backends whose id and address are unchanged, with their statistics and health",
          "[cluster]") {
  Cluster c{HealthSettings{}};
  CaptureCerr log;
  c.publish(c.prepare(ring_of(3), "ring.yaml"));
  const auto before = c.topology();
  const auto n1 = backend(*before, "n1"), n2 = backend(*before, "n2"), n3 = backend(*before, "n3");
  n1->stats.response(200);
  n1->stats.response(200);
  n1->stats.error(ErrorClass::timeout);
  n1->stats.latency.observe_ns(3'000'000);
  n1->stats.connects = 4;
  n1->stats.pool_idle = 2;
  for (int i = 0; i < 3; ++i) c.check_result(*n2, false, "GET /health: timeout");
  REQUIRE_FALSE(n2->up);

  // n1's weight changes (the ring's business), n2 is as it was, n3 moves to another port, n4 is new.
  auto next = c.prepare(ring({node("n1", 9001, 2), node("n2", 9002), node("n3", 9333), node("n4", 9004)}), "ring.yaml");
  REQUIRE(ids(next->backends) == "n1 n2 n3 n4");
  CHECK(next->backends[0] == n1);
  CHECK(n1->stats.requests() == 3);
  CHECK(n1->stats.responses[1] == 2);
  CHECK(n1->stats.errors[static_cast<std::size_t>(ErrorClass::timeout)] == 1);
  CHECK(n1->stats.latency.count() == 1);
  CHECK(n1->stats.connects == 4);
  CHECK(n1->stats.pool_idle == 2);
  CHECK(next->backends[1] == n2);
  CHECK_FALSE(n2->up);
  CHECK(last_check(*n2) == "GET /health: timeout");

  const auto n3_new = next->backends[2];
  CHECK(n3_new != n3);
  CHECK(n3_new->address == HostPort{"127.0.0.1", 9333});
  CHECK(n3_new->resolved == "127.0.0.1:9333");
  CHECK(n3_new->stats.requests() == 0);
  CHECK(n3_new->up);
  CHECK(n3_new->slot != n3->slot);
  CHECK(next->backends[3]->slot != n3_new->slot);
  CHECK(last_check(*next->backends[3]) == "none yet");

  CHECK(c.publish(next) == 2);
  CHECK(n3->retired);  // its node is now another backend, at another address
  CHECK_FALSE(n1->retired);
  CHECK_FALSE(n2->retired);
  CHECK_FALSE(n3_new->retired);
}

TEST_CASE("a node dropped from the ring is retired, the others are not", "[cluster]") {
  Cluster c{HealthSettings{}};
  c.publish(c.prepare(ring_of(3), "ring.yaml"));
  const auto t = c.topology();
  const auto n1 = backend(*t, "n1"), n2 = backend(*t, "n2"), n3 = backend(*t, "n3");
  auto next = c.prepare(ring({node("n1", 9001), node("n3", 9003)}), "ring.yaml");
  CHECK_FALSE(n2->retired);  // prepare alone retires nothing
  c.publish(next);
  CHECK(n2->retired);
  CHECK_FALSE(n1->retired);
  CHECK_FALSE(n3->retired);
  CHECK(ids(c.topology()->backends) == "n1 n3");
}

TEST_CASE("on_new_backend is called for each backend a publish adds, and only those", "[cluster]") {
  Cluster c{HealthSettings{}};
  std::vector<std::shared_ptr<Backend>> added;
  c.on_new_backend = [&](std::shared_ptr<Backend> b) { added.push_back(std::move(b)); };
  auto added_ids = [&] {
    const std::string s = ids(added);
    added.clear();
    return s;
  };

  c.publish(c.prepare(ring_of(2), "ring.yaml"));
  REQUIRE(added.size() == 2);
  CHECK(added[0] == c.topology()->backends[0]);  // the published backends themselves
  CHECK(added[1] == c.topology()->backends[1]);
  CHECK(added_ids() == "n1 n2");

  c.publish(c.prepare(ring_of(2), "ring.yaml"));
  CHECK(added_ids() == "");  // the same nodes: carried over

  c.publish(c.prepare(ring_of(3), "ring.yaml"));
  CHECK(added_ids() == "n3");

  c.publish(c.prepare(ring({node("n1", 9001), node("n3", 9003)}), "ring.yaml"));
  CHECK(added_ids() == "");  // dropping a node adds none

  c.publish(c.prepare(ring({node("n1", 9001), node("n3", 9103)}), "ring.yaml"));
  REQUIRE(added.size() == 1);
  CHECK(added[0]->address == HostPort{"127.0.0.1", 9103});  // n3 at its new address is a new backend
  added.clear();

  SECTION("a rebalance: the joining node when it begins, nothing when it finishes") {
    auto m = c.prepare_migration(ring({node("n1", 9001), node("n3", 9103), node("n4", 9004)}), "", Phase::dual_write,
                                 "new.yaml");
    CHECK(added_ids() == "");  // prepare_migration alone adds nothing
    c.publish(with_migration(*c.topology(), m));
    CHECK(added_ids() == "n4");
    auto read_new = std::make_shared<Migration>(*m);
    read_new->change.phase = Phase::read_new;
    c.publish(with_migration(*c.topology(), read_new));
    CHECK(added_ids() == "");
    c.publish(finished(*read_new));
    CHECK(added_ids() == "");
  }
}

TEST_CASE("older_in_use counts the holders of older topologies, down to 0 when they let go", "[cluster]") {
  Cluster c{HealthSettings{}};
  CHECK(c.older_in_use() == 0);
  c.publish(c.prepare(ring_of(2), "ring.yaml"));
  auto held_v1 = c.topology();
  CHECK(c.older_in_use() == 0);  // the current topology is not older

  c.publish(c.prepare(ring_of(3), "ring.yaml"));
  CHECK(c.older_in_use() == 1);
  auto held_v1_again = held_v1;
  CHECK(c.older_in_use() == 2);

  auto held_v2 = c.topology();
  c.publish(c.prepare(ring_of(2), "ring.yaml"));
  CHECK(c.older_in_use() == 3);
  auto held_v3 = c.topology();
  CHECK(c.older_in_use() == 3);

  held_v1.reset();
  held_v1_again.reset();
  CHECK(c.older_in_use() == 1);
  held_v2.reset();
  CHECK(c.older_in_use() == 0);
  held_v3.reset();
  CHECK(c.older_in_use() == 0);
}

TEST_CASE("check_result: fall failures in a row mark a node DOWN, rise successes UP again, and say so", "[cluster]") {
  Cluster c{HealthSettings{std::chrono::milliseconds(2000), std::chrono::milliseconds(1000), 3, 2}};
  c.publish(c.prepare(ring_of(1), "ring.yaml"));
  Backend& b = *c.topology()->backends[0];
  CaptureCerr log;
  const auto t0 = last_change(b);

  CHECK_FALSE(c.check_result(b, false, "connect: Connection refused"));
  CHECK_FALSE(c.check_result(b, false, "connect: Connection refused"));
  CHECK(b.up);
  CHECK(last_check(b) == "connect: Connection refused");
  CHECK(last_change(b) == t0);
  CHECK(log.take() == "");

  CHECK(c.check_result(b, false, "timeout"));
  CHECK_FALSE(b.up);
  CHECK(last_check(b) == "timeout");
  CHECK(last_change(b) >= t0);
  CHECK(log.take() == "kvproxy: node n1 (127.0.0.1:9001) is DOWN (3 failed checks: timeout)\n");
  const auto t_down = last_change(b);

  CHECK_FALSE(c.check_result(b, false, "timeout"));  // down already
  CHECK(log.take() == "");

  CHECK_FALSE(c.check_result(b, true, "200"));
  CHECK_FALSE(b.up);
  CHECK(last_check(b) == "200");
  CHECK(last_change(b) == t_down);

  CHECK(c.check_result(b, true, "204"));
  CHECK(b.up);
  CHECK(last_change(b) >= t_down);
  CHECK(log.take() == "kvproxy: node n1 (127.0.0.1:9001) is UP (2 good checks: 204)\n");

  CHECK_FALSE(c.check_result(b, true, "200"));  // up already
  CHECK(log.take() == "");

  SECTION("a success between failures starts the count again") {
    CHECK_FALSE(c.check_result(b, false, "x"));
    CHECK_FALSE(c.check_result(b, false, "x"));
    CHECK_FALSE(c.check_result(b, true, "200"));
    CHECK_FALSE(c.check_result(b, false, "x"));
    CHECK_FALSE(c.check_result(b, false, "x"));
    CHECK(b.up);
    CHECK(c.check_result(b, false, "x"));
    CHECK_FALSE(b.up);
  }
  SECTION("a failure between successes starts the count again") {
    for (int i = 0; i < 3; ++i) c.check_result(b, false, "x");
    REQUIRE_FALSE(b.up);
    CHECK_FALSE(c.check_result(b, true, "200"));
    CHECK_FALSE(c.check_result(b, false, "x"));
    CHECK_FALSE(c.check_result(b, true, "200"));
    CHECK_FALSE(b.up);
    CHECK(c.check_result(b, true, "200"));
    CHECK(b.up);
  }
}

TEST_CASE("check_result with fall 1 and rise 1: one check decides", "[cluster]") {
  Cluster c{HealthSettings{std::chrono::milliseconds(100), std::chrono::milliseconds(50), 1, 1}};
  c.publish(c.prepare(ring_of(1), "ring.yaml"));
  Backend& b = *c.topology()->backends[0];
  CaptureCerr log;
  CHECK(c.check_result(b, false, "503"));
  CHECK_FALSE(b.up);
  CHECK(c.check_result(b, true, "200"));
  CHECK(b.up);
  CHECK(log.take() ==
        "kvproxy: node n1 (127.0.0.1:9001) is DOWN (1 failed checks: 503)\n"
        "kvproxy: node n1 (127.0.0.1:9001) is UP (1 good checks: 200)\n");
}

TEST_CASE("passive_down marks an up node DOWN at once, once, and it needs rise good checks to come back", "[cluster]") {
  Cluster c{HealthSettings{}};  // fall 3, rise 2
  c.publish(c.prepare(ring_of(2), "ring.yaml"));
  Backend& b = *c.topology()->backends[1];
  CaptureCerr log;
  CHECK_FALSE(c.check_result(b, true, "200"));  // one good check counted while up
  const auto t0 = last_change(b);

  c.passive_down(b, "connect: Connection refused");
  CHECK_FALSE(b.up);
  CHECK(last_change(b) >= t0);
  CHECK(log.take() == "kvproxy: node n2 (127.0.0.1:9002) is DOWN (connect: Connection refused)\n");
  CHECK(last_check(b) == "200");  // a passive mark is not a check
  const auto t_down = last_change(b);

  c.passive_down(b, "timeout");
  CHECK_FALSE(b.up);
  CHECK(last_change(b) == t_down);
  CHECK(log.take() == "");

  // The good check before the mark does not count towards rise.
  CHECK_FALSE(c.check_result(b, true, "200"));
  CHECK_FALSE(b.up);
  CHECK(c.check_result(b, true, "200"));
  CHECK(b.up);
  CHECK(log.take() == "kvproxy: node n2 (127.0.0.1:9002) is UP (2 good checks: 200)\n");
  CHECK(c.topology()->backends[0]->up);  // the other node was never touched
}

TEST_CASE("node_views: the ring's nodes, then the joining ones with their next ownership", "[cluster]") {
  Cluster c{HealthSettings{}};
  c.publish(c.prepare(ring_of(3), "ring.yaml"));
  const auto t = c.topology();

  SECTION("no rebalance: the ring's nodes, no next ownership") {
    const auto v = node_views(*t);
    REQUIRE(ids(v) == "n1 n2 n3");
    for (std::size_t i = 0; i < v.size(); ++i) {
      CHECK(v[i].backend == t->backends[i]);
      CHECK(v[i].weight == 1);
      CHECK(v[i].ownership == t->ownership[i]);
      CHECK_FALSE(v[i].next);
      CHECK_FALSE(v[i].joining);
    }
  }
  SECTION("a rebalance: n1 leaves, n3 doubles its weight, n4 and n0 join") {
    auto m = c.prepare_migration(ring({node("n4", 9004), node("n2", 9002), node("n3", 9003, 2), node("n0", 9000)}), "",
                                 Phase::dual_write, "new.yaml");
    REQUIRE(ids(m->backends) == "n0 n2 n3 n4");
    const auto w = with_migration(*t, m);
    const auto v = node_views(*w);
    REQUIRE(ids(v) == "n1 n2 n3 n0+ n4+");
    // n1: in the ring in use, not in the new one
    CHECK(v[0].backend == t->backends[0]);
    CHECK(v[0].ownership == t->ownership[0]);
    REQUIRE(v[0].next);
    CHECK(*v[0].next == 0.0);
    // n2 and n3: in both; weight and ownership of the ring in use, next of the new ring
    CHECK(v[1].backend == t->backends[1]);
    CHECK(v[1].backend == m->backends[1]);
    CHECK(v[1].ownership == t->ownership[1]);
    REQUIRE(v[1].next);
    CHECK(*v[1].next == m->ownership[1]);
    CHECK(v[2].weight == 1);
    CHECK(v[2].ownership == t->ownership[2]);
    REQUIRE(v[2].next);
    CHECK(*v[2].next == m->ownership[2]);
    // n0, n4: joining, in the new ring's order; their weight is the new ring's, no share yet
    for (std::size_t i : {3u, 4u}) {
      CHECK(v[i].joining);
      CHECK(v[i].ownership == 0.0);
      CHECK(v[i].weight == 1);
    }
    CHECK(v[3].backend == m->backends[0]);
    CHECK(*v[3].next == m->ownership[0]);
    CHECK(v[4].backend == m->backends[3]);
    CHECK(*v[4].next == m->ownership[3]);
    double next_total = 0;
    for (const auto& x : v) next_total += *x.next;
    CHECK(next_total == Approx(1.0));
    for (std::size_t i : {0u, 1u, 2u}) CHECK_FALSE(v[i].joining);
  }
}

TEST_CASE("with_migration and finished: a rebalance's topologies, built aside and published in turn", "[cluster]") {
  Cluster c{HealthSettings{}};
  std::vector<std::string> added;
  c.on_new_backend = [&](std::shared_ptr<Backend> b) { added.push_back(b->id); };
  c.publish(c.prepare(ring_of(3), "ring.yaml"));
  added.clear();
  const auto t = c.topology();
  const RingConfig next_config = ring({node("n2", 9002), node("n3", 9003), node("n4", 9004)});

  auto m = c.prepare_migration(next_config, "vnodes: 256\n", Phase::dual_write, "new.yaml");
  CHECK(m->phase() == Phase::dual_write);
  CHECK(m->change.from == t->fingerprint);
  CHECK(m->change.to == ring_fingerprint(next_config));
  CHECK(m->fingerprint() == m->change.to);
  CHECK(m->change.yaml == "vnodes: 256\n");
  CHECK(ids(m->backends) == "n2 n3 n4");
  CHECK(m->backends[0] == t->backends[1]);  // shared with the ring in use
  CHECK(m->backends[1] == t->backends[2]);
  CHECK(m->ownership == m->ring->ownership());
  CHECK(c.topology() == t);  // nothing published

  const auto w = with_migration(*t, m);
  CHECK(w->migration == m);
  CHECK(w->ring == t->ring);
  CHECK(w->backends == t->backends);
  CHECK(w->ownership == t->ownership);
  CHECK(w->fingerprint == t->fingerprint);
  CHECK(t->migration == nullptr);  // a copy: the topology in use is untouched
  CHECK(c.publish(w) == 2);
  CHECK(added == std::vector<std::string>{"n4"});
  const auto n1 = t->backends[0], n4 = m->backends[2];
  CHECK_FALSE(n1->retired);  // leaving, but the ring in use still has it
  CHECK_FALSE(n4->retired);

  SECTION("finished: the new ring alone") {
    const auto f = finished(*m);
    CHECK(f->migration == nullptr);
    CHECK(f->ring == m->ring);
    CHECK(f->backends == m->backends);
    CHECK(f->ownership == m->ownership);
    CHECK(f->fingerprint == m->change.to);
    CHECK(f->config.nodes.size() == 3);
    CHECK(c.publish(f) == 3);
    CHECK(n1->retired);
    CHECK_FALSE(n4->retired);
    CHECK(ids(c.topology()->backends) == "n2 n3 n4");
    CHECK(added.size() == 1);
  }
  SECTION("aborted: the ring in use alone, the joining node retired") {
    CHECK(c.publish(with_migration(*c.topology(), nullptr)) == 3);
    CHECK(n4->retired);
    CHECK_FALSE(n1->retired);
    CHECK(c.topology()->fingerprint == t->fingerprint);
    CHECK(c.topology()->migration == nullptr);
  }
  SECTION("a reload during the rebalance reuses the joining node's backend") {
    auto again = c.prepare_migration(next_config, "", Phase::read_new, "new.yaml");
    CHECK(again->backends[2] == n4);
    CHECK(again->change.from == t->fingerprint);
  }
}

TEST_CASE("prepare refuses an address that does not resolve, naming its place in the file", "[cluster]") {
  Cluster c{HealthSettings{}};
  c.publish(c.prepare(ring_of(1), "ring.yaml"));
  const auto before = c.topology();

  // The reason is the resolver's own (no network: it may say the name is unknown or that it cannot ask).
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo("no-such-host.invalid", "9002", &hints, &res);
  if (res) ::freeaddrinfo(res);
  REQUIRE(rc != 0);
  const std::string reason = ::gai_strerror(rc);

  SECTION("the only node") {
    CHECK_THROWS_MATCHES(
        c.prepare(ring({{"n1", {"no-such-host.invalid", 9002}, 1, {}}}), "ring.yaml"), ConfigError,
        Catch::Matchers::Message("ring.yaml: nodes[0].address: cannot resolve 'no-such-host.invalid': " + reason));
  }
  SECTION("the second node of the file, first on the ring") {
    CHECK_THROWS_MATCHES(
        c.prepare(ring({node("b", 9001), {"a", {"no-such-host.invalid", 9002}, 1, {}}}), "conf/ring.yaml"), ConfigError,
        Catch::Matchers::Message("conf/ring.yaml: nodes[1].address: cannot resolve 'no-such-host.invalid': " + reason));
  }
  SECTION("in a rebalance's new ring") {
    CHECK_THROWS_MATCHES(
        c.prepare_migration(ring({node("n1", 9001), {"n2", {"no-such-host.invalid", 9002}, 1, {}}}), "", Phase::dual_write,
                            "<admin body>"),
        ConfigError,
        Catch::Matchers::Message("<admin body>: nodes[1].address: cannot resolve 'no-such-host.invalid': " + reason));
  }
  CHECK(c.topology() == before);
  CHECK(c.version() == 1);
}

TEST_CASE("prepare validates the config before it resolves anything", "[cluster]") {
  Cluster c{HealthSettings{}};
  CHECK_THROWS_MATCHES(c.prepare(ring({node("n1", 9001), node("n1", 9002)}), "ring.yaml"), ConfigError,
                       Catch::Matchers::Message("ring.yaml: nodes[1].id: duplicate id 'n1' (also nodes[0])"));
  CHECK_THROWS_MATCHES(c.prepare(ring({}), "ring.yaml"), ConfigError,
                       Catch::Matchers::Message("ring.yaml: nodes: at least one node is required"));
  CHECK(c.topology() == nullptr);
}

TEST_CASE("a replicated ring is served, and may be a rebalance's new ring", "[cluster][replicas]") {
  Cluster c{HealthSettings{}};
  RingConfig r = ring_of(3);
  r.replicas = 3;
  c.publish(c.prepare(r, "ring.yaml"));
  CHECK(c.topology()->ring->replicas() == 3);
  // Replica sets move under joint quorums (proxy/routing.hpp), so a replicated ring may be moved to.
  RingConfig bigger = ring_of(4);
  bigger.replicas = 3;
  const auto m = c.prepare_migration(bigger, "", Phase::dual_write, "<admin body>");
  CHECK(m->ring->replicas() == 3);
  CHECK(m->backends.size() == 4);
}

TEST_CASE("an IPv6 node: resolved and labelled with brackets", "[cluster]") {
  Cluster c{HealthSettings{}};
  c.publish(c.prepare(ring({{"n6", {"::1", 9006}, 1, {}}}), "ring.yaml"));
  const Backend& b = *c.topology()->backends[0];
  CHECK(b.resolved == "[::1]:9006");
  CHECK(b.label() == "n6 ([::1]:9006)");
  CHECK(b.node_field == "X-KV-Node: n6\r\n");
}

TEST_CASE("BackendStats: answers counted by status class, requests = answers + the proxy's errors", "[cluster]") {
  BackendStats s;
  for (unsigned status : {100u, 200u, 204u, 299u, 304u, 404u, 400u, 500u, 503u, 599u}) s.response(status);
  s.response(99);   // not a status class: not counted
  s.response(600);
  s.response(0);
  CHECK(s.responses[0] == 1);
  CHECK(s.responses[1] == 3);
  CHECK(s.responses[2] == 1);
  CHECK(s.responses[3] == 2);
  CHECK(s.responses[4] == 3);
  s.error(ErrorClass::connect);
  s.error(ErrorClass::down);
  s.error(ErrorClass::down);
  CHECK(s.errors[0] == 1);
  CHECK(s.errors[3] == 2);
  CHECK(s.requests() == 13);
  CHECK(error_class_name(ErrorClass::connect) == "connect");
  CHECK(error_class_name(ErrorClass::timeout) == "timeout");
  CHECK(error_class_name(ErrorClass::bad_response) == "bad_response");
  CHECK(error_class_name(ErrorClass::down) == "down");
}
