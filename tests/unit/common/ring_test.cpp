#include <catch2/catch.hpp>
#include <xxhash.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "common/hash.hpp"
#include "common/ring.hpp"

using kv::Ring;
using kv::RingConfig;
using kv::uint128;

namespace {

RingConfig make_config(int n, std::uint32_t vnodes = kv::kDefaultVnodes) {
  RingConfig c;
  c.vnodes = vnodes;
  for (int i = 1; i <= n; ++i)
    c.nodes.push_back({"n" + std::to_string(i), {"127.0.0.1", static_cast<std::uint16_t>(8080 + i)}, 1, {}});
  return c;
}

constexpr uint128 kSpace = static_cast<uint128>(1) << 64;

double fraction(uint128 v) { return static_cast<double>(v) / 18446744073709551616.0; }

// Walks two rings together over every boundary of either; calls f(length, owner id in a, owner id in b)
// for each stretch on which both owners are constant. Exact: no sampling. A linear merge of the two
// sorted point lists: stretch (prev cut, cut] belongs in each ring to the first point at or after cut.
template <class F>
void diff_rings(const Ring& a, const Ring& b, F&& f) {
  const std::size_t na = a.point_count(), nb = b.point_count();
  std::size_t i = 0, j = 0;
  std::uint64_t prev = std::max(a.point(na - 1), b.point(nb - 1));  // the last cut: the first stretch wraps
  while (i < na || j < nb) {
    std::uint64_t cut;
    if (j == nb || (i < na && a.point(i) <= b.point(j))) cut = a.point(i);
    else cut = b.point(j);
    const std::uint32_t oa = a.point_owner(i < na ? i : 0), ob = b.point_owner(j < nb ? j : 0);
    f(static_cast<std::uint64_t>(cut - prev), a.node(oa).id, b.node(ob).id);
    while (i < na && a.point(i) == cut) ++i;
    while (j < nb && b.point(j) == cut) ++j;
    prev = cut;
  }
}

}  // namespace

TEST_CASE("hash_point hashes id, a zero byte and the big-endian index with the fixed seed", "[hash]") {
  const char bytes[] = {'n', '1', 0, 0, 0, 1, 2};
  CHECK(kv::hash_point("n1", 0x0102) == XXH3_64bits_withSeed(bytes, sizeof bytes, kv::kHashSeed));
  CHECK(kv::hash_key("hello") == XXH3_64bits_withSeed("hello", 5, kv::kHashSeed));
  CHECK(kv::kHashSeed == 0x6b7672696e672131ULL);
}

// The golden ring: vnodes 2, n1 and n2 weight 1, n3 weight 2 (8 points).
//   0 0x6e1c53d8d2b8e77e n3      4 0xc28bb1352e75d906 n3
//   1 0x8fe894e7af3b2faa n3      5 0xd05ac34daced9848 n2
//   2 0x9b49b3c83dfa4843 n2      6 0xf292bf0c13ce1b38 n1
//   3 0xade5b778d1618402 n3      7 0xf2e80a24d6550028 n1
// If this test fails, placements changed: every stored key and every deployed proxy is affected.
TEST_CASE("golden ring: exact points, owners and lookups", "[ring][golden]") {
  RingConfig c = make_config(3, 2);
  c.nodes[2].weight = 2;
  const auto r = Ring::build(c);
  const std::vector<std::pair<std::uint64_t, std::string>> want = {
      {0x6e1c53d8d2b8e77eULL, "n3"}, {0x8fe894e7af3b2faaULL, "n3"}, {0x9b49b3c83dfa4843ULL, "n2"},
      {0xade5b778d1618402ULL, "n3"}, {0xc28bb1352e75d906ULL, "n3"}, {0xd05ac34daced9848ULL, "n2"},
      {0xf292bf0c13ce1b38ULL, "n1"}, {0xf2e80a24d6550028ULL, "n1"}};
  REQUIRE(r->point_count() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(r->point(i) == want[i].first);
    CHECK(r->node(r->point_owner(i)).id == want[i].second);
  }
  auto owner = [&](std::uint64_t h) { return r->node(r->owner_of_hash(h)).id; };
  CHECK(owner(0) == "n3");                                           // before the first point
  CHECK(owner(std::numeric_limits<std::uint64_t>::max()) == "n3");   // wraps to the first point
  CHECK(owner(0x9b49b3c83dfa4843ULL) == "n2");                       // exactly on a point: that point
  CHECK(owner(0x9b49b3c83dfa4843ULL + 1) == "n3");                   // just past it: the next point
  CHECK(owner(0xf292bf0c13ce1b38ULL) == "n1");
  CHECK(owner(0xf2e80a24d6550028ULL + 1) == "n3");
  CHECK(r->node(r->owner_of_key("hello")).id == "n2");  // hash 0xccf7821855de6bf2
  CHECK(r->node(r->owner_of_key("user:42")).id == "n1");  // hash 0xdf0328c9e5de06ad

  // Exact ownership from the arcs above: n1 owns (0xd05a..., 0xf2e8...], n2 two arcs, n3 the rest.
  const auto own = r->ownership_exact();
  const uint128 n1 = 0xf2e80a24d6550028ULL - 0xd05ac34daced9848ULL;
  const uint128 n2 = (0x9b49b3c83dfa4843ULL - 0x8fe894e7af3b2faaULL) + (0xd05ac34daced9848ULL - 0xc28bb1352e75d906ULL);
  CHECK(own[0] == n1);
  CHECK(own[1] == n2);
  CHECK(own[2] == kSpace - n1 - n2);
}

namespace {

// The placement rule as the contract states it, computed another way than Ring does: one walk from
// the key's point with a queue of the nodes passed over for their zone, taken first once every zone
// is used (Cassandra's way of walking racks).
std::vector<std::string> placement_by_queue(const Ring& r, std::uint64_t h, std::uint32_t n_replicas) {
  std::size_t start = 0;
  while (start < r.point_count() && r.point(start) < h) ++start;
  if (start == r.point_count()) start = 0;
  std::set<std::string> zones_all, zones_used;
  for (const auto& node : r.nodes()) zones_all.insert(node.zone.empty() ? "\x01" + node.id : node.zone);
  std::vector<std::string> chosen, skipped;
  auto zone_of = [&](const std::string& id) {
    const auto& node = r.node(static_cast<std::uint32_t>(r.find_node(id)));
    return node.zone.empty() ? "\x01" + node.id : node.zone;
  };
  auto take = [&](const std::string& id) {
    chosen.push_back(id);
    zones_used.insert(zone_of(id));
  };
  for (std::size_t k = 0; k < r.point_count() && chosen.size() < n_replicas; ++k) {
    const std::string id = r.node(r.point_owner((start + k) % r.point_count())).id;
    if (std::find(chosen.begin(), chosen.end(), id) != chosen.end()) continue;
    if (zones_used.size() == zones_all.size()) {  // every zone used: the queue first, in order met
      while (!skipped.empty() && chosen.size() < n_replicas) {
        take(skipped.front());
        skipped.erase(skipped.begin());
      }
      if (chosen.size() < n_replicas && std::find(chosen.begin(), chosen.end(), id) == chosen.end()) take(id);
    } else if (zones_used.count(zone_of(id))) {
      if (std::find(skipped.begin(), skipped.end(), id) == skipped.end()) skipped.push_back(id);
    } else {
      take(id);
    }
  }
  while (!skipped.empty() && chosen.size() < n_replicas) {
    take(skipped.front());
    skipped.erase(skipped.begin());
  }
  return chosen;
}

std::vector<std::string> ids(const Ring& r, const kv::ReplicaSet& set) {
  std::vector<std::string> out;
  for (auto n : set) out.push_back(r.node(n).id);
  return out;
}

}  // namespace

TEST_CASE("golden replica sets: distinct nodes clockwise, zones first", "[ring][golden][replicas]") {
  // The golden ring above: points n3 n3 n2 n3 n3 n2 n1 n1.
  RingConfig c = make_config(3, 2);
  c.nodes[2].weight = 2;
  c.replicas = 2;
  auto r = Ring::build(c);
  using V = std::vector<std::string>;
  CHECK(ids(*r, r->replicas_of_hash(0)) == V{"n3", "n2"});                       // point 0, then point 2
  CHECK(ids(*r, r->replicas_of_hash(0xd05ac34daced9848ULL)) == V{"n2", "n1"});    // point 5
  CHECK(ids(*r, r->replicas_of_hash(0xf292bf0c13ce1b38ULL)) == V{"n1", "n3"});    // point 6: skips n1's point 7
  CHECK(ids(*r, r->replicas_of_hash(0xf2e80a24d6550028ULL + 1)) == V{"n3", "n2"});  // wraps
  CHECK(ids(*r, r->replicas_of_key("hello")) == V{"n2", "n1"});
  CHECK(r->replicas_of_hash(12345).size == 2);

  // Zones: n1 and n2 in zone a, n3 in b. From point 5 (n2) the walk passes n1 (zone a is used while
  // b is not) and takes n3; with 3 replicas, n1 comes after, once every zone is used.
  c.nodes[0].zone = "a";
  c.nodes[1].zone = "a";
  c.nodes[2].zone = "b";
  r = Ring::build(c);
  CHECK(r->zone_count() == 2);
  CHECK(ids(*r, r->replicas_of_hash(0xd05ac34daced9848ULL)) == V{"n2", "n3"});
  CHECK(ids(*r, r->replicas_of_hash(0xf292bf0c13ce1b38ULL)) == V{"n1", "n3"});
  c.replicas = 3;
  r = Ring::build(c);
  CHECK(ids(*r, r->replicas_of_hash(0xd05ac34daced9848ULL)) == V{"n2", "n3", "n1"});
  CHECK(ids(*r, r->replicas_of_hash(0)) == V{"n3", "n2", "n1"});
}

TEST_CASE("replica sets follow the contract's rule, checked against a second implementation", "[ring][replicas]") {
  std::mt19937_64 rng(11);
  for (int shape = 0; shape < 12; ++shape) {
    RingConfig c = make_config(3 + shape % 5, 64);
    c.replicas = 1 + static_cast<std::uint32_t>(shape % std::min<std::size_t>(5, c.nodes.size()));
    for (std::size_t i = 0; i < c.nodes.size(); ++i) {
      c.nodes[i].weight = 1 + static_cast<std::uint32_t>(rng() % 3);
      // Shapes 0-3: no zones; 4-7: two zones; 8-11: three zones and a node of no zone.
      if (shape >= 4) c.nodes[i].zone = "z" + std::to_string(i % (shape < 8 ? 2 : 3));
      if (shape >= 8 && i == 0) c.nodes[i].zone.clear();
    }
    const auto r = Ring::build(c);
    INFO("shape " << shape << ", " << c.nodes.size() << " nodes, replicas " << c.replicas);
    for (int probe = 0; probe < 2000; ++probe) {
      const std::uint64_t h = probe < 3 ? std::vector<std::uint64_t>{0, 1, ~0ull}[probe] : rng();
      const auto set = r->replicas_of_hash(h);
      REQUIRE(set.size == c.replicas);
      REQUIRE(set.node[0] == r->owner_of_hash(h));
      REQUIRE(ids(*r, set) == placement_by_queue(*r, h, c.replicas));
      // Zones are distinct while there are enough of them.
      std::set<std::uint32_t> zones;
      for (auto n : set) zones.insert(r->node(n).zone_index);
      REQUIRE(zones.size() == std::min(c.replicas, r->zone_count()));
    }
  }
}

TEST_CASE("one zone for every node places as no zones at all", "[ring][replicas]") {
  RingConfig c = make_config(5, 128);
  c.replicas = 3;
  const auto plain = Ring::build(c);
  for (auto& n : c.nodes) n.zone = "only";
  const auto zoned = Ring::build(c);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) {
    const auto h = rng();
    REQUIRE(plain->replicas_of_hash(h) == zoned->replicas_of_hash(h));
  }
}

TEST_CASE("holding: each node's share of copies, exact, N in all", "[ring][replicas]") {
  RingConfig c = make_config(5, 2048);
  c.replicas = 3;
  auto r = Ring::build(c);
  auto held = r->holding_exact();
  uint128 total = 0;
  for (auto h : held) total += h;
  CHECK(total == 3 * kSpace);  // every hash counted once per replica
  for (auto h : held) CHECK(fraction(h) == Approx(0.6).epsilon(0.03));
  // Against sampling: the share of random hashes whose set holds each node.
  std::mt19937_64 rng(5);
  std::vector<double> sampled(5, 0);
  const int samples = 200000;
  for (int i = 0; i < samples; ++i)
    for (auto n : r->replicas_of_hash(rng())) sampled[n] += 1.0 / samples;
  for (std::size_t i = 0; i < 5; ++i) CHECK(sampled[i] == Approx(fraction(held[i])).margin(0.01));
  // replicas == nodes: every node holds everything; replicas 1: holding is ownership.
  c.replicas = 5;
  for (auto h : Ring::build(c)->holding_exact()) CHECK(h == kSpace);
  c.replicas = 1;
  r = Ring::build(c);
  CHECK(r->holding_exact() == r->ownership_exact());
}

TEST_CASE("the ring does not depend on the order of the node list", "[ring]") {
  RingConfig c = make_config(7, 512);
  c.nodes[3].weight = 3;
  const auto a = Ring::build(c);
  std::mt19937 rng(42);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(c.nodes.begin(), c.nodes.end(), rng);
    const auto b = Ring::build(c);
    REQUIRE(a->point_count() == b->point_count());
    bool same = true;
    for (std::size_t i = 0; i < a->point_count(); ++i)
      same = same && a->point(i) == b->point(i) && a->node(a->point_owner(i)).id == b->node(b->point_owner(i)).id;
    CHECK(same);
    CHECK(a->ownership_exact() == b->ownership_exact());
  }
}

TEST_CASE("a node's identity is its id, not its address", "[ring]") {
  RingConfig c = make_config(4, 256);
  const auto a = Ring::build(c);
  c.nodes[1].address.port = 9999;
  const auto b = Ring::build(c);
  for (std::size_t i = 0; i < a->point_count(); ++i) REQUIRE(a->point(i) == b->point(i));
}

TEST_CASE("lookup agrees with a plain binary search over the points", "[ring]") {
  const auto r = Ring::build(make_config(5, 64));
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> probes = {0, 1, std::numeric_limits<std::uint64_t>::max()};
  for (std::size_t i = 0; i < r->point_count(); ++i) {
    probes.push_back(r->point(i));
    probes.push_back(r->point(i) + 1);
    probes.push_back(r->point(i) - 1);
  }
  for (int i = 0; i < 20000; ++i) probes.push_back(rng());
  std::vector<std::uint64_t> pts;
  for (std::size_t i = 0; i < r->point_count(); ++i) pts.push_back(r->point(i));
  for (auto h : probes) {
    auto it = std::lower_bound(pts.begin(), pts.end(), h);
    const std::size_t idx = it == pts.end() ? 0 : static_cast<std::size_t>(it - pts.begin());
    REQUIRE(r->owner_of_hash(h) == r->point_owner(idx));
  }
}

TEST_CASE("a single node owns the whole space", "[ring]") {
  const auto r = Ring::build(make_config(1, 16));
  CHECK(r->ownership_exact()[0] == kSpace);
  CHECK(r->owner_of_hash(0) == 0);
  CHECK(r->owner_of_hash(std::numeric_limits<std::uint64_t>::max()) == 0);
  const auto arcs = r->arcs();
  REQUIRE(arcs.size() == 1);
  CHECK(arcs[0].start == arcs[0].end);
}

TEST_CASE("arcs are maximal, cover the space once and agree with lookups", "[ring]") {
  const auto r = Ring::build(make_config(4, 128));
  const auto arcs = r->arcs();
  uint128 total = 0;
  std::vector<uint128> per_node(4, 0);
  for (std::size_t i = 0; i < arcs.size(); ++i) {
    const auto& a = arcs[i];
    const std::uint64_t len = a.end - a.start;
    total += len;
    per_node[a.node] += len;
    CHECK(r->owner_of_hash(a.end) == a.node);
    CHECK(r->owner_of_hash(a.start + 1) == a.node);
    CHECK(arcs[(i + 1) % arcs.size()].node != a.node);  // maximal: neighbours differ
    CHECK(arcs[(i + 1) % arcs.size()].start == a.end);  // contiguous
  }
  CHECK(total == kSpace);
  CHECK(per_node == r->ownership_exact());
}

TEST_CASE("weights scale ownership", "[ring]") {
  RingConfig c = make_config(3, 4096);
  c.nodes[0].weight = 2;  // n1 should own 2/4
  const auto own = Ring::build(c)->ownership();
  CHECK(own[0] == Approx(0.5).epsilon(0.03));
  CHECK(own[1] == Approx(0.25).epsilon(0.03));
  CHECK(own[2] == Approx(0.25).epsilon(0.03));
}

// The quality bar for the default settings, on exact ownership: balanced within 2% for 3..64 equal
// nodes, and adding or removing a node moves at most 1.02x the ideal share, all of it to or from
// that node. (HAProxy 2.6, default weights: 1.06 at 3 nodes, 1.16 at 4; adding a 4th moved 28.3%.)
TEST_CASE("default ring: balance and minimal movement for 3 to 64 nodes", "[ring][quality]") {
  std::shared_ptr<const Ring> prev = Ring::build(make_config(2));
  double worst_balance = 0, worst_add = 0, worst_remove = 0;
  for (int n = 3; n <= 65; ++n) {
    const auto cur = Ring::build(make_config(n));
    const auto own = cur->ownership_exact();
    REQUIRE(own.size() == static_cast<std::size_t>(n));
    uint128 sum = 0, mx = 0;
    for (auto o : own) {
      sum += o;
      mx = std::max(mx, o);
    }
    REQUIRE(sum == kSpace);
    const double balance = fraction(mx) * n;  // max / mean
    if (n <= 64) {
      INFO("nodes: " << n << " max/mean: " << balance);
      CHECK(balance <= 1.02);
      worst_balance = std::max(worst_balance, balance);
    }

    // prev (n-1 nodes) -> cur (n nodes) is adding node "n<n>"; cur -> prev is removing it.
    const std::string added = "n" + std::to_string(n);
    uint128 moved = 0;
    bool only_added = true;
    diff_rings(*prev, *cur, [&](std::uint64_t len, const std::string& before, const std::string& after) {
      if (before == after) return;
      moved += len;
      if (after != added) only_added = false;
    });
    INFO("adding " << added);
    CHECK(only_added);  // no stretch moves between two nodes that both stay
    const double add_ratio = fraction(moved) * n;  // ideal share moved on add: 1/n
    CHECK(add_ratio <= 1.02);
    // Removing `added` from cur moves exactly what adding it moved; ideal is 1/n of the space.
    CHECK(add_ratio == Approx(fraction(own[cur->find_node(added)]) * n));
    worst_add = std::max(worst_add, add_ratio);
    worst_remove = std::max(worst_remove, add_ratio);
    prev = cur;
  }
  // Removing a node that is not the last added (n2 of 10) also moves only its own arcs.
  const auto ten = Ring::build(make_config(10));
  RingConfig nine = make_config(10);
  nine.nodes.erase(nine.nodes.begin() + 1);
  uint128 moved = 0;
  bool only_removed = true;
  diff_rings(*ten, *Ring::build(nine), [&](std::uint64_t len, const std::string& before, const std::string& after) {
    if (before == after) return;
    moved += len;
    if (before != "n2") only_removed = false;
  });
  CHECK(only_removed);
  CHECK(fraction(moved) * 10 <= 1.02);
  WARN("worst max/mean " << worst_balance << ", worst add " << worst_add << ", worst remove " << worst_remove);
}
