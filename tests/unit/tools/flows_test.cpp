#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "tools/flows.hpp"

using namespace kv;
using kv::tools::Flow;
using kv::tools::group_flows;

namespace {

RingConfig ring_of(std::initializer_list<std::pair<const char*, std::uint16_t>> list) {
  RingConfig c;
  c.vnodes = 16;
  for (const auto& [id, port] : list) c.nodes.push_back({id, {"127.0.0.1", port}, 1, {}});
  return c;
}

std::uint32_t at(const Ring& r, const char* id) { return static_cast<std::uint32_t>(r.find_node(id)); }

}  // namespace

TEST_CASE("moves group by (old owner, new owner), sorted by id, ranges in hash order", "[flows]") {
  // Ids out of alphabetical order in the files: flows sort by id, not by file or ring index.
  const auto from = Ring::build(ring_of({{"zeta", 8081}, {"alpha", 8082}}));
  const auto to = Ring::build(ring_of({{"zeta", 8081}, {"alpha", 8082}, {"mid", 8083}}));
  const std::vector<Move> moves{
      {{10, 19}, at(*from, "zeta"), at(*to, "mid")},
      {{20, 29}, at(*from, "alpha"), at(*to, "mid")},
      {{30, 39}, at(*from, "zeta"), at(*to, "alpha")},
      {{40, 49}, at(*from, "zeta"), at(*to, "mid")},
      {{50, 59}, at(*from, "alpha"), at(*to, "mid")},
  };
  const std::vector<Flow> flows = group_flows(moves, *from, *to);
  REQUIRE(flows.size() == 3);
  CHECK((flows[0].from_id == "alpha" && flows[0].to_id == "mid"));
  CHECK(flows[0].ranges == std::vector<HashRange>{{20, 29}, {50, 59}});
  CHECK(flows[0].from == HostPort{"127.0.0.1", 8082});
  CHECK(flows[0].to == HostPort{"127.0.0.1", 8083});
  CHECK((flows[1].from_id == "zeta" && flows[1].to_id == "alpha"));
  CHECK(flows[1].ranges == std::vector<HashRange>{{30, 39}});
  CHECK(flows[1].to == HostPort{"127.0.0.1", 8082});
  CHECK((flows[2].from_id == "zeta" && flows[2].to_id == "mid"));
  CHECK(flows[2].ranges == std::vector<HashRange>{{10, 19}, {40, 49}});
  CHECK(flows[2].from == HostPort{"127.0.0.1", 8081});
}

TEST_CASE("a real ring change: every moved range in exactly one flow, to the node that joins", "[flows]") {
  const auto from_cfg = ring_of({{"n1", 8081}, {"n2", 8082}, {"n3", 8083}});
  const auto to_cfg = ring_of({{"n1", 8081}, {"n2", 8082}, {"n3", 8083}, {"n4", 8084}});
  const auto from = Ring::build(from_cfg), to = Ring::build(to_cfg);
  const auto moves = moved_ranges(*from, *to);
  const auto flows = group_flows(moves, *from, *to);
  REQUIRE(flows.size() == 3);
  std::size_t ranges = 0;
  for (std::size_t i = 0; i < flows.size(); ++i) {
    CHECK(flows[i].from_id == "n" + std::to_string(i + 1));
    CHECK(flows[i].to_id == "n4");
    CHECK(flows[i].to.port == 8084);
    for (std::size_t j = 1; j < flows[i].ranges.size(); ++j) CHECK(flows[i].ranges[j - 1].hi < flows[i].ranges[j].lo);
    ranges += flows[i].ranges.size();
  }
  CHECK(ranges == moves.size());
  CHECK(group_flows({}, *from, *to).empty());
}

// ---- replicated ring changes ---------------------------------------------------------------------

using kv::tools::range_copies;
using kv::tools::replica_change;

namespace {

// Whether every write a majority of `old_set` held is, after the copies, held by enough of `new_set`
// that every majority of it meets them: checked over every majority of each.
bool safe(const std::vector<std::string>& old_set, const std::vector<std::string>& new_set, const kv::tools::RangeCopies& c) {
  const std::uint32_t all_old = (1u << old_set.size()) - 1, all_new = (1u << new_set.size()) - 1;
  const int maj_old = static_cast<int>(old_set.size() / 2 + 1), maj_new = static_cast<int>(new_set.size() / 2 + 1);
  for (std::uint32_t m = 0; m <= all_old; ++m) {
    if (__builtin_popcount(m) < maj_old) continue;
    if (!(m & c.sources)) return false;  // the sources must meet every majority of the old set
    std::uint32_t holders = c.targets;
    for (std::size_t j = 0; j < new_set.size(); ++j)
      for (std::size_t i = 0; i < old_set.size(); ++i)
        if ((m & (1u << i)) && old_set[i] == new_set[j]) holders |= 1u << j;
    for (std::uint32_t q = 0; q <= all_new; ++q)
      if (__builtin_popcount(q) >= maj_new && !(q & holders)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("replicated copies: sources a majority of the old set, targets what the new set's majorities need", "[flows][replication]") {
  // A node joins: old {a,b,c} -> new {a,b,d}: the two kept members are the sources, d the target.
  auto c = range_copies({"a", "b", "c"}, {"a", "b", "d"});
  CHECK(c.sources == 0b011);
  CHECK(c.targets == 0b100);
  // replicas 1 -> 3: the one owner is the source, both new members targets.
  c = range_copies({"a"}, {"a", "b", "c"});
  CHECK((c.sources == 0b1 && c.targets == 0b110));
  // 3 -> 5: two new members.
  c = range_copies({"a", "b", "c"}, {"a", "b", "c", "d", "e"});
  CHECK(c.targets == 0b11000);
  // 5 -> 3: nobody new, but a write may be held by a majority of the old five that is only one of the
  // three kept: a kept member is refreshed from the sources.
  c = range_copies({"a", "b", "c", "d", "e"}, {"a", "b", "c"});
  CHECK(__builtin_popcount(c.sources) == 3);
  CHECK(__builtin_popcount(c.targets) >= 1);
  // 3 -> 2: every majority of two is both: the kept ones need nothing.
  c = range_copies({"a", "b", "c"}, {"a", "b"});
  CHECK(c.targets == 0);
  // Disjoint sets: all three new members from two old ones.
  c = range_copies({"a", "b", "c"}, {"d", "e", "f"});
  CHECK((__builtin_popcount(c.sources) == 2 && c.targets == 0b111));

  // Every pair of sets of 1..5 members drawn from 7 nodes, in random orders: always safe.
  std::mt19937 rng(19);
  const std::vector<std::string> pool{"a", "b", "c", "d", "e", "f", "g"};
  for (int round = 0; round < 3000; ++round) {
    auto draw = [&](std::size_t n) {
      std::vector<std::string> s = pool;
      std::shuffle(s.begin(), s.end(), rng);
      s.resize(n);
      return s;
    };
    const auto old_set = draw(1 + rng() % 5), new_set = draw(1 + rng() % 5);
    const auto copies = range_copies(old_set, new_set);
    INFO("round " << round);
    REQUIRE(safe(old_set, new_set, copies));
    for (std::size_t j = 0; j < new_set.size(); ++j)  // every member new to the range is a target
      if (std::find(old_set.begin(), old_set.end(), new_set[j]) == old_set.end()) REQUIRE(copies.targets & (1u << j));
  }
}

TEST_CASE("replicated copies group by (source, target); gains and losses by node", "[flows][replication]") {
  RingConfig a = ring_of({{"n1", 8081}, {"n2", 8082}, {"n3", 8083}});
  RingConfig b = ring_of({{"n1", 8081}, {"n2", 8082}, {"n3", 8083}, {"n4", 8084}});
  a.replicas = b.replicas = 3;
  const auto from = Ring::build(a), to = Ring::build(b);
  const auto change = replica_change(replica_moves(*from, *to), *from, *to);
  // Only n4 joins sets: it gains, it is every copy's target, each of its ranges from two sources.
  REQUIRE(change.gains.size() == 1);
  CHECK(change.gains[0].id == "n4");
  CHECK(change.gains[0].address == HostPort{"127.0.0.1", 8084});
  double gained = 0, copied = 0;
  for (const auto& r : change.gains[0].ranges) gained += range_share(r);
  for (const auto& f : change.copies) {
    CHECK(f.to_id == "n4");
    for (const auto& r : f.ranges) copied += range_share(r);
  }
  CHECK(copied == Approx(2 * gained));
  // Each old node leaves the sets n4 takes its place in.
  CHECK(change.losses.size() == 3);
  double lost = 0;
  for (const auto& l : change.losses) {
    CHECK(l.id != "n4");
    for (std::size_t i = 1; i < l.ranges.size(); ++i) CHECK(l.ranges[i - 1].hi < l.ranges[i].lo);
    for (const auto& r : l.ranges) lost += range_share(r);
  }
  CHECK(lost == Approx(gained));
}
