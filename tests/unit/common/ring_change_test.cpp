#include <catch2/catch.hpp>

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include <limits>
#include <random>

#include "common/config.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "common/transfer.hpp"

using kv::HashRange;
using kv::RingConfig;

namespace {

RingConfig nodes(std::initializer_list<std::pair<const char*, std::uint32_t>> list, std::uint32_t vnodes = 256) {
  RingConfig c;
  c.vnodes = vnodes;
  std::uint16_t port = 8081;
  for (const auto& [id, w] : list) c.nodes.push_back({id, {"127.0.0.1", port++}, w, {}});
  return c;
}

// Checks moved_ranges against lookups: every range's ends (and a sample inside) change owner as
// stated, the gaps between ranges keep theirs, and the ranges ascend without overlapping.
void check_moves(const RingConfig& a_cfg, const RingConfig& b_cfg) {
  const auto a = kv::Ring::build(a_cfg), b = kv::Ring::build(b_cfg);
  const auto moves = kv::moved_ranges(*a, *b);
  std::mt19937_64 rng(7);
  auto owner_a = [&](std::uint64_t h) { return a->node(a->owner_of_hash(h)).id; };
  auto owner_b = [&](std::uint64_t h) { return b->node(b->owner_of_hash(h)).id; };
  std::uint64_t next_free = 0;  // first hash not yet covered or checked
  bool wrapped = false;
  for (const auto& m : moves) {
    REQUIRE(m.range.lo <= m.range.hi);
    REQUIRE(!wrapped);
    REQUIRE(m.range.lo >= next_free);
    for (std::uint64_t h : {m.range.lo, m.range.hi, m.range.lo + (m.range.hi - m.range.lo) / 2}) {
      REQUIRE(owner_a(h) == a->node(m.from).id);
      REQUIRE(owner_b(h) == b->node(m.to).id);
    }
    // The hash just before a range (if not covered by the previous one) keeps its owner.
    if (m.range.lo > next_free) REQUIRE(owner_a(m.range.lo - 1) == owner_b(m.range.lo - 1));
    if (m.range.hi == std::numeric_limits<std::uint64_t>::max()) wrapped = true;
    else next_free = m.range.hi + 1;
  }
  // Random hashes: moved exactly when inside some range.
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t h = rng();
    auto it = std::upper_bound(moves.begin(), moves.end(), h, [](std::uint64_t v, const kv::Move& m) { return v < m.range.lo; });
    const bool inside = it != moves.begin() && std::prev(it)->range.hi >= h;
    REQUIRE(inside == (owner_a(h) != owner_b(h)));
  }
}

}  // namespace

TEST_CASE("moved_ranges is exact for adding, removing and reweighing nodes", "[ring_change]") {
  check_moves(nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}}), nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}}));
  check_moves(nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}}), nodes({{"n1", 1}, {"n2", 1}, {"n4", 1}}));
  check_moves(nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}}), nodes({{"n1", 1}, {"n2", 3}, {"n3", 1}}));
  check_moves(nodes({{"a", 1}}), nodes({{"b", 1}}));  // everything moves
  check_moves(nodes({{"a", 1}}, 1), nodes({{"a", 1}, {"b", 1}}, 1));
}

TEST_CASE("moved_ranges: nothing moves between identical rings; everything between disjoint ones", "[ring_change]") {
  const auto a = kv::Ring::build(nodes({{"n1", 1}, {"n2", 2}}));
  CHECK(kv::moved_ranges(*a, *a).empty());
  const auto b = kv::Ring::build(nodes({{"x", 1}}));
  const auto all = kv::moved_ranges(*a, *b);
  double share = 0;
  for (const auto& m : all) share += kv::range_share(m.range);
  CHECK(share == Approx(1.0));
  REQUIRE(!all.empty());
  CHECK(all.front().range.lo == 0);
  CHECK(all.back().range.hi == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("plan: adding a node moves about 1/N, all of it to the new node", "[ring_change]") {
  const auto from_cfg = nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}}, kv::kDefaultVnodes);
  const auto to_cfg = nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}}, kv::kDefaultVnodes);
  const auto a = kv::Ring::build(from_cfg), b = kv::Ring::build(to_cfg);
  const auto plan = kv::make_plan(from_cfg, *a, to_cfg, *b);
  CHECK(plan.ideal_moved == Approx(0.25));
  CHECK(plan.moved == Approx(0.25).epsilon(0.03));
  REQUIRE(plan.flows.size() == 3);
  for (const auto& f : plan.flows) {
    CHECK(f.to == "n4");
    CHECK(f.ideal == Approx(1.0 / 12));
    CHECK(f.share == Approx(1.0 / 12).epsilon(0.05));
  }
  REQUIRE(plan.nodes.size() == 4);
  CHECK(plan.nodes[3].id == "n4");
  CHECK(plan.nodes[3].weight_before == 0);
  CHECK(plan.nodes[3].before == 0);
  CHECK(plan.nodes[3].after == Approx(plan.moved));
  CHECK(plan.from_fingerprint != plan.to_fingerprint);
}

TEST_CASE("ring_fingerprint ignores list order and the proxy section, not membership", "[ring_change]") {
  auto a = nodes({{"n1", 1}, {"n2", 1}});
  auto b = nodes({{"n1", 1}, {"n2", 1}});
  std::swap(b.nodes[0], b.nodes[1]);
  b.proxy.threads = 4;
  CHECK(kv::ring_fingerprint(a) == kv::ring_fingerprint(b));
  CHECK(kv::ring_fingerprint(a).size() == 16);
  b.nodes[0].weight = 2;
  CHECK(kv::ring_fingerprint(a) != kv::ring_fingerprint(b));
  auto c = a;
  c.vnodes = 512;
  CHECK(kv::ring_fingerprint(a) != kv::ring_fingerprint(c));
  auto d = a;
  d.nodes[1].address.port = 9999;
  CHECK(kv::ring_fingerprint(a) != kv::ring_fingerprint(d));
}

TEST_CASE("ring_fingerprint: replicas and zones count, and a ring without them keeps its old fingerprint", "[ring_change][replicas]") {
  auto a = nodes({{"n1", 1}, {"n2", 1}});
  // The canonical text of before replicas existed: migration states saved by proxies name it.
  const std::string canon = "kvring ring v1\nvnodes 256\nn1 127.0.0.1:8081 1\nn2 127.0.0.1:8082 1\n";
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH3_64bits_withSeed(canon.data(), canon.size(), 0)));
  CHECK(kv::ring_fingerprint(a) == hex);
  auto b = a;
  b.replicas = 2;
  CHECK(kv::ring_fingerprint(a) != kv::ring_fingerprint(b));
  auto c = a;
  c.nodes[0].zone = "a";
  CHECK(kv::ring_fingerprint(a) != kv::ring_fingerprint(c));
}

TEST_CASE("ideal_holding: proportional to weight, N in all, none above the whole space", "[ring_change][replicas]") {
  using V = std::vector<double>;
  CHECK(kv::ideal_holding({1, 1, 1}, 1) == V{1.0 / 3, 1.0 / 3, 1.0 / 3});
  const auto three = kv::ideal_holding({1, 1, 1, 1}, 3);
  for (double x : three) CHECK(x == Approx(0.75));
  // Weight 4 of 6 would hold 3 * 4/6 = 2 copies: it holds everything once, the rest share 2.
  const auto heavy = kv::ideal_holding({4, 1, 1}, 3);
  CHECK(heavy[0] == Approx(1.0));
  CHECK(heavy[1] == Approx(1.0));
  CHECK(heavy[2] == Approx(1.0));
  const auto water = kv::ideal_holding({8, 1, 1, 2}, 2);
  CHECK(water[0] == Approx(1.0));
  CHECK(water[1] == Approx(0.25));
  CHECK(water[2] == Approx(0.25));
  CHECK(water[3] == Approx(0.5));
}

TEST_CASE("plan with replication: what each node holds, against the ideal", "[ring_change][replicas]") {
  auto a = nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}}, 2048);
  auto b = nodes({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}}, 2048);
  a.replicas = 1;
  b.replicas = 3;
  const auto ra = kv::Ring::build(a), rb = kv::Ring::build(b);
  const auto plan = kv::make_plan(a, *ra, b, *rb);
  CHECK(plan.replicas_before == 1);
  CHECK(plan.replicas_after == 3);
  REQUIRE(plan.nodes.size() == 4);
  double held_after = 0;
  for (const auto& n : plan.nodes) {
    held_after += n.held_after;
    CHECK(n.ideal_held_after == Approx(0.75));
    CHECK(n.held_after == Approx(0.75).epsilon(0.03));
    if (n.id != "n4") CHECK(n.held_before == Approx(n.before));  // replicas 1: what it owns
  }
  CHECK(held_after == Approx(3.0));
}

TEST_CASE("check_change refuses what a rebalance cannot do, with exact messages", "[ring_change]") {
  const auto a = nodes({{"n1", 1}, {"n2", 1}});
  auto vn = a;
  vn.vnodes = 128;
  CHECK_THROWS_WITH(kv::check_change(a, "old.yaml", vn, "new.yaml"),
                    "new.yaml: vnodes: 128 differs from old.yaml (256); a rebalance keeps vnodes (changing it moves "
                    "almost every key)");
  auto moved = a;
  moved.nodes[1].address.port = 9082;
  CHECK_THROWS_WITH(kv::check_change(a, "old.yaml", moved, "new.yaml"),
                    "new.yaml: nodes[1].address: node n2 is at 127.0.0.1:8082 in old.yaml; a rebalance cannot move a "
                    "node to another address (its data stays at the old one)");
  auto renamed = a;
  renamed.nodes[1].id = "n9";
  CHECK_THROWS_WITH(kv::check_change(a, "old.yaml", renamed, "new.yaml"),
                    "new.yaml: nodes[1].id: address 127.0.0.1:8082 belongs to n2 in old.yaml; renaming a node is not a "
                    "rebalance (remove it and add a node at another address)");
  auto added = a;
  added.nodes.push_back({"n3", {"127.0.0.1", 8083}, 2, {}});
  CHECK_NOTHROW(kv::check_change(a, "old.yaml", added, "new.yaml"));
}

TEST_CASE("transfer: ranges and records round-trip; malformed input is refused with its place", "[transfer]") {
  std::string body;
  kv::append_range(body, {0, 15});
  kv::append_range(body, {16, ~std::uint64_t{0}});
  std::vector<HashRange> ranges;
  std::string err;
  REQUIRE(kv::parse_ranges(body, ranges, err));
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[1] == HashRange{16, ~std::uint64_t{0}});
  CHECK(body == "0000000000000000 000000000000000f\n0000000000000010 ffffffffffffffff\n");

  CHECK_FALSE(kv::parse_ranges("0000000000000010 0000000000000001\n", ranges, err));
  CHECK(err == "ranges: line 1: LO is above HI");
  CHECK_FALSE(kv::parse_ranges("0000000000000000 0000000000000010\n0000000000000010 0000000000000011\n", ranges, err));
  CHECK(err == "ranges: line 2: ranges must ascend without overlapping");
  CHECK_FALSE(kv::parse_ranges("0 1\n", ranges, err));
  CHECK(err == "ranges: line 1: expected \"LO HI\" as two 16-digit hex numbers");
  CHECK(kv::parse_ranges("", ranges, err));
  CHECK(ranges.empty());

  std::string recs;
  const std::string key8 = std::string("\x00\x01\x02\x03\x04\x05\x06\x07", 8) + "k\xff";
  kv::append_record(recs, key8, "");
  kv::append_record(recs, key8 + "2", std::string(70000, 'v'));
  std::vector<kv::Record> out;
  REQUIRE(kv::parse_records(recs, out, err));
  REQUIRE(out.size() == 2);
  CHECK(out[0].key == key8);
  CHECK(out[0].value.empty());
  CHECK(out[1].value.size() == 70000);
  // Every truncation of a valid body is refused.
  for (std::size_t cut = 1; cut < 30; ++cut) CHECK_FALSE(kv::parse_records(std::string_view(recs).substr(0, recs.size() - cut), out, err));
  CHECK_FALSE(kv::parse_records(std::string("\0\0\0\3abc\0\0\0\0", 11), out, err));
  CHECK(err == "records: entry 1: key shorter than its 8-byte hash");

  std::string bytes;
  CHECK(kv::parse_hex_bytes(kv::hex_bytes(key8), bytes));
  CHECK(bytes == key8);
  CHECK_FALSE(kv::parse_hex_bytes("abc", bytes));
  CHECK_FALSE(kv::parse_hex_bytes("zz", bytes));
  std::uint64_t v = 0;
  CHECK(kv::parse_hex64("FFFFFFFFFFFFFFFF", v));
  CHECK(v == ~std::uint64_t{0});
}

namespace {

RingConfig replicated(std::initializer_list<std::pair<const char*, std::uint32_t>> list, std::uint32_t replicas) {
  RingConfig c = nodes(list);
  c.replicas = replicas;
  return c;
}

std::vector<std::string> ids_of(const kv::Ring& r, const kv::ReplicaSet& s) {
  std::vector<std::string> out;
  for (std::uint32_t n : s) out.push_back(r.node(n).id);
  std::sort(out.begin(), out.end());
  return out;
}

// replica_moves against lookups: inside each range the sets are as stated and differ; random hashes
// are inside a range exactly when their sets differ (as sets of ids).
void check_replica_moves(const RingConfig& a_cfg, const RingConfig& b_cfg) {
  const auto a = kv::Ring::build(a_cfg), b = kv::Ring::build(b_cfg);
  const auto moves = kv::replica_moves(*a, *b);
  std::uint64_t next_free = 0;
  for (const auto& m : moves) {
    REQUIRE(m.range.lo <= m.range.hi);
    REQUIRE(m.range.lo >= next_free);
    REQUIRE(ids_of(*a, m.from) != ids_of(*b, m.to));
    for (std::uint64_t h : {m.range.lo, m.range.hi, m.range.lo + (m.range.hi - m.range.lo) / 2}) {
      REQUIRE(ids_of(*a, a->replicas_of_hash(h)) == ids_of(*a, m.from));
      REQUIRE(ids_of(*b, b->replicas_of_hash(h)) == ids_of(*b, m.to));
    }
    if (m.range.hi == std::numeric_limits<std::uint64_t>::max()) break;
    next_free = m.range.hi + 1;
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t h = rng();
    auto it = std::upper_bound(moves.begin(), moves.end(), h,
                               [](std::uint64_t v, const kv::ReplicaMove& m) { return v < m.range.lo; });
    const bool inside = it != moves.begin() && std::prev(it)->range.hi >= h;
    REQUIRE(inside == (ids_of(*a, a->replicas_of_hash(h)) != ids_of(*b, b->replicas_of_hash(h))));
  }
}

}  // namespace

TEST_CASE("replica_moves is exact for adding and removing nodes and changing replicas", "[ring_change][replication]") {
  check_replica_moves(replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}}, 3), replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}}, 3));
  check_replica_moves(replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}, {"n5", 1}}, 3),
                      replicated({{"n1", 1}, {"n2", 1}, {"n4", 1}, {"n5", 1}}, 3));
  check_replica_moves(replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}}, 1), replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}}, 3));
  check_replica_moves(replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}, {"n5", 1}}, 3),
                      replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}, {"n5", 1}}, 5));
  check_replica_moves(replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}, {"n4", 1}}, 3),
                      replicated({{"n1", 1}, {"n2", 3}, {"n3", 1}, {"n4", 1}}, 3));
  // replicas 1 -> 3 over three nodes: every key gains two copies, the whole ring is one change.
  const auto one = kv::Ring::build(replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}}, 1));
  const auto three = kv::Ring::build(replicated({{"n1", 1}, {"n2", 1}, {"n3", 1}}, 3));
  double share = 0;
  for (const auto& m : kv::replica_moves(*one, *three)) share += kv::range_share(m.range);
  CHECK(share == Approx(1.0));
  CHECK(kv::replica_moves(*three, *three).empty());
}
