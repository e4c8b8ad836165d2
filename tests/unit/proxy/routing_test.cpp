// proxy/routing.hpp: where each request goes, for every rebalance phase, every kind of access, keys
// that move and keys that stay, and what a phase answers when one of the nodes a request needs is
// down. The rings are real (three nodes, then four); no sockets.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/hash.hpp"
#include "proxy/cluster.hpp"
#include "proxy/routing.hpp"

using namespace kv;
using namespace kv::proxy;

namespace {

RingConfig ring_of(int nodes) {
  RingConfig c;
  c.vnodes = 256;
  for (int i = 1; i <= nodes; ++i) c.nodes.push_back({"n" + std::to_string(i), {"127.0.0.1", std::uint16_t(9000 + i)}, 1, {}});
  return c;
}

// A cluster routing by three nodes, and the change to four, in each phase.
struct Fixture {
  Cluster cluster{HealthSettings{}};
  std::shared_ptr<const Topology> none, dual_write, read_new;
  std::string moving, staying;  // keys whose owner changes (n1..n3 -> n4), and one whose does not

  Fixture() {
    cluster.publish(cluster.prepare(ring_of(3), "old.yaml"));
    none = cluster.topology();
    auto m = cluster.prepare_migration(ring_of(4), "nodes: ...", Phase::dual_write, "new.yaml");
    dual_write = with_migration(*none, m);
    auto m2 = std::make_shared<Migration>(*m);
    m2->change.phase = Phase::read_new;
    read_new = with_migration(*none, m2);
    for (int i = 0; moving.empty() || staying.empty(); ++i) {
      const std::string k = "key-" + std::to_string(i);
      // Adding a node moves keys only to it.
      std::string& slot = m->ring->node(m->ring->owner_of_key(k)).id == "n4" ? moving : staying;
      if (slot.empty()) slot = k;
    }
  }
  std::string old_owner(const std::string& k) const { return none->ring->node(none->ring->owner_of_key(k)).id; }
};

// The route as text: "n2" (forward), "write n4 n2" (a versioned write, in its write order), "read-both
// n4 n2", then " moving" and " down=ID" when they apply.
std::string describe(const Route& r) {
  std::string out;
  if (r.plan == Plan::versioned_write) out = "write ";
  if (r.plan == Plan::read_both) out = "read-both ";
  for (std::uint8_t i = 0; i < r.node_count(); ++i) {
    if (i) out += ' ';
    out += r.nodes[i]->id;
  }
  if (r.moving) out += " moving";
  if (r.down) out += " down=" + r.down->id;
  return out;
}

std::string route_of(const Topology& t, const std::string& key, Access a) { return describe(route(t, hash_key(key), a)); }

Backend& backend(const Topology& t, const std::string& id) {
  for (const auto& b : t.backends)
    if (b->id == id) return *b;
  for (const auto& b : t.migration->backends)
    if (b->id == id) return *b;
  FAIL("no backend " << id);
  throw;
}

}  // namespace

TEST_CASE("methods map to reads, writes and deletes", "[routing]") {
  CHECK(access_of(http::Method::get) == Access::read);
  CHECK(access_of(http::Method::head) == Access::read);
  CHECK(access_of(http::Method::post) == Access::write);
  CHECK(access_of(http::Method::put) == Access::write);
  CHECK(access_of(http::Method::other) == Access::write);  // the node answers 405 for what it does not know
  CHECK(access_of(http::Method::delete_) == Access::remove);
}

TEST_CASE("with no rebalance every request goes to the key's owner alone", "[routing]") {
  Fixture f;
  for (const auto& key : {f.moving, f.staying}) {
    const std::string owner = f.old_owner(key);
    for (Access a : {Access::read, Access::write, Access::remove}) CHECK(route_of(*f.none, key, a) == owner);
  }
}

TEST_CASE("keys that do not move are routed as before in every phase", "[routing]") {
  Fixture f;
  const std::string owner = f.old_owner(f.staying);
  for (const auto* t : {f.dual_write.get(), f.read_new.get()})
    for (Access a : {Access::read, Access::write, Access::remove}) CHECK(route_of(*t, f.staying, a) == owner);
}

TEST_CASE("dual_write: reads from the old owner; writes versioned, to the new owner first, then the old", "[routing]") {
  Fixture f;
  const std::string old = f.old_owner(f.moving);
  CHECK(route_of(*f.dual_write, f.moving, Access::read) == old + " moving");
  CHECK(route_of(*f.dual_write, f.moving, Access::write) == "write n4 " + old + " moving");
  CHECK(route_of(*f.dual_write, f.moving, Access::remove) == "write n4 " + old + " moving");
}

TEST_CASE("read_new: reads from both owners; writes versioned, to the old owner first, then the new", "[routing]") {
  Fixture f;
  const std::string old = f.old_owner(f.moving);
  CHECK(route_of(*f.read_new, f.moving, Access::read) == "read-both n4 " + old + " moving");
  CHECK(route_of(*f.read_new, f.moving, Access::write) == "write " + old + " n4 moving");
  CHECK(route_of(*f.read_new, f.moving, Access::remove) == "write " + old + " n4 moving");
}

TEST_CASE("a node that is down: 503 naming it for the requests that need it, never another node", "[routing]") {
  Fixture f;
  const std::string old = f.old_owner(f.moving);
  SECTION("the old owner down") {
    backend(*f.none, old).up = false;
    CHECK(route_of(*f.none, f.moving, Access::read) == old + " down=" + old);
    CHECK(route_of(*f.dual_write, f.moving, Access::read) == old + " moving down=" + old);
    CHECK(route_of(*f.dual_write, f.moving, Access::write) == "write n4 " + old + " moving down=" + old);
    // read_new reads both owners: a dead old owner costs reads and writes of moving keys a 503.
    CHECK(route_of(*f.read_new, f.moving, Access::read) == "read-both n4 " + old + " moving down=" + old);
    CHECK(route_of(*f.read_new, f.moving, Access::remove) == "write " + old + " n4 moving down=" + old);
  }
  SECTION("the new owner down") {
    backend(*f.dual_write, "n4").up = false;
    CHECK(route_of(*f.none, f.moving, Access::write) == old);  // not in the ring in use
    CHECK(route_of(*f.dual_write, f.moving, Access::read) == old + " moving");
    CHECK(route_of(*f.dual_write, f.moving, Access::write) == "write n4 " + old + " moving down=n4");
    CHECK(route_of(*f.read_new, f.moving, Access::read) == "read-both n4 " + old + " moving down=n4");
    CHECK(route_of(*f.read_new, f.moving, Access::write) == "write " + old + " n4 moving down=n4");
  }
  SECTION("both down: the first node of the plan is named") {
    backend(*f.dual_write, "n4").up = false;
    backend(*f.none, old).up = false;
    CHECK(route_of(*f.dual_write, f.moving, Access::write) == "write n4 " + old + " moving down=n4");
    CHECK(route_of(*f.read_new, f.moving, Access::write) == "write " + old + " n4 moving down=" + old);
  }
}

TEST_CASE("a versioned write goes on to its next node only if the first took it", "[routing]") {
  CHECK(proceeds(Access::write, 200));
  CHECK(proceeds(Access::write, 204));
  CHECK_FALSE(proceeds(Access::write, 404));
  CHECK_FALSE(proceeds(Access::write, 400));
  CHECK_FALSE(proceeds(Access::write, 500));
  CHECK_FALSE(proceeds(Access::write, 503));
  CHECK(proceeds(Access::remove, 200));
  CHECK(proceeds(Access::remove, 404));  // the first owner held no value: it keeps the tombstone all the same
  CHECK_FALSE(proceeds(Access::remove, 500));
}

// ---- replicated rings ---------------------------------------------------------------------------

namespace {

RingConfig replicated_ring(int nodes, std::uint32_t replicas) {
  RingConfig c = ring_of(nodes);
  c.replicas = replicas;
  return c;
}

std::string ids(const ReplicaRoute& r) {
  std::string out;
  for (Backend* b : r.members()) out += (out.empty() ? "" : " ") + b->id;
  return out;
}

}  // namespace

TEST_CASE("replicated routing: a key's replica set, and the union of both sets while it changes", "[routing][replication]") {
  Cluster cluster{HealthSettings{}};
  cluster.publish(cluster.prepare(replicated_ring(3, 3), "old.yaml"));
  const auto none = cluster.topology();
  CHECK(replicated(*none));
  const std::string key = "key-1";
  const ReplicaRoute plain = replica_route(*none, hash_key(key));
  CHECK(plain.count == 3);
  CHECK_FALSE(plain.moving);
  CHECK_FALSE(plain.system.is_joint());

  SECTION("a fourth node: keys it joins have four replicas, a majority of each set a quorum") {
    auto m = cluster.prepare_migration(replicated_ring(4, 3), "nodes: ...", Phase::dual_write, "new.yaml");
    const auto change = with_migration(*none, m);
    int moving = 0, staying = 0;
    for (int i = 0; i < 200; ++i) {
      const std::string k = "key-" + std::to_string(i);
      const std::uint64_t h = hash_key(k);
      const ReplicaRoute r = replica_route(*change, h);
      const ReplicaSet before = none->ring->replicas_of_hash(h), after = m->ring->replicas_of_hash(h);
      bool n4 = false;
      for (std::uint32_t n : after) n4 = n4 || m->ring->node(n).id == "n4";
      INFO(k << ": " << ids(r));
      CHECK(r.moving == n4);  // adding a node changes only the sets it joins
      if (!r.moving) {
        CHECK(ids(r) == ids(replica_route(*none, h)));
        CHECK_FALSE(r.system.is_joint());
        ++staying;
        continue;
      }
      ++moving;
      REQUIRE(r.count == 4);
      CHECK(r.replicas[3]->id == "n4");  // the old set in placement order, then the new member
      for (std::uint32_t i2 = 0; i2 < before.size; ++i2) CHECK(r.replicas[i2]->id == none->ring->node(before.node[i2]).id);
      REQUIRE(r.system.is_joint());
      CHECK(r.system.set(0) == 0b0111);
      // The new set: n4 and the two old replicas it keeps.
      std::uint32_t expect = 0;
      for (std::uint32_t n : after)
        for (unsigned j = 0; j < r.count; ++j)
          if (r.replicas[j]->id == m->ring->node(n).id) expect |= 1u << j;
      CHECK(r.system.set(1) == expect);
      CHECK(__builtin_popcount(expect) == 3);
      CHECK(r.system.first_quorum(0b1111) == (r.system.set(0) & r.system.set(1)));  // the two kept replicas
    }
    CHECK(moving > 0);
    CHECK(staying > 0);
    // The other phase routes alike: only the rebalancer tells them apart.
    auto m2 = std::make_shared<Migration>(*m);
    m2->change.phase = Phase::read_new;
    const auto later = with_migration(*none, m2);
    for (int i = 0; i < 50; ++i) {
      const std::uint64_t h = hash_key("key-" + std::to_string(i));
      CHECK(ids(replica_route(*later, h)) == ids(replica_route(*change, h)));
    }
  }

  SECTION("replicas 1 -> 3: the old owner is in every quorum") {
    Cluster one{HealthSettings{}};
    one.publish(one.prepare(replicated_ring(3, 1), "old.yaml"));
    const auto before = one.topology();
    CHECK_FALSE(replicated(*before));
    auto m = one.prepare_migration(replicated_ring(3, 3), "nodes: ...", Phase::dual_write, "new.yaml");
    const auto change = with_migration(*before, m);
    CHECK(replicated(*change));
    const std::uint64_t h = hash_key(key);
    const ReplicaRoute r = replica_route(*change, h);
    CHECK(r.moving);
    REQUIRE(r.count == 3);
    CHECK(r.replicas[0]->id == before->ring->node(before->ring->owner_of_hash(h)).id);
    CHECK(r.system.set(0) == 0b001);
    CHECK(r.system.set(1) == 0b111);
    CHECK_FALSE(r.system.is_quorum(0b110));
  }
}
