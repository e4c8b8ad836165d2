#include <catch2/catch.hpp>

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
