// The moves of a ring change grouped by the pair of nodes they go between: the unit ring-rebalance
// apply copies and cleans up, and reports in its summary.
#pragma once

#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"

namespace kv::tools {

// The ranges moving from one node to another, with the nodes' addresses.
struct Flow {
  std::string from_id, to_id;
  HostPort from, to;
  std::vector<HashRange> ranges;  // in hash order
};

// One flow per (old owner, new owner) of `moves`, sorted by their ids; `from` and `to` are the rings
// the moves index.
std::vector<Flow> group_flows(const std::vector<Move>& moves, const Ring& from, const Ring& to);

}  // namespace kv::tools
