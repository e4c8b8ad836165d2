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

// ---- replica sets (replicas: N in either ring) ----------------------------------------------------
// A ranges' node: one that gains copies of them or loses them.
struct NodeRanges {
  std::string id;
  HostPort address;
  std::vector<HashRange> ranges;  // in hash order
};

// What a replicated ring change moves. A write acknowledged before the change is held by a majority
// of its key's old set, not by every member; after the change, every majority of the new set must
// meet the replicas that hold it (the same overlap joint quorums keep during the change). So for each
// range whose set changes, the copy's sources are a majority of the old set (the members the new set
// keeps first, in placement order), and each target takes the newest of every source: the new set's
// members not in the old one, then as many kept members as that overlap needs, whatever majority held
// the write (5 -> 3 replicas, for instance, gains nobody but must refresh one kept member).
struct ReplicaChange {
  std::vector<Flow> copies;        // source -> target, sorted by their ids
  std::vector<Flow> primary;       // the first source of each range -> each member new to it: what it gains, once
  std::vector<NodeRanges> gains;   // members new to ranges: cleared before the change begins
  std::vector<NodeRanges> losses;  // members ranges leave: dropped once every proxy is on NEW
};
ReplicaChange replica_change(const std::vector<ReplicaMove>& moves, const Ring& from, const Ring& to);

// For one range: the sources and targets above, as bits over the members `old_set` then `new_set`
// index (old: placement order of the old set; new: of the new set). Exposed for the tests.
struct RangeCopies {
  std::uint32_t sources = 0;      // bits of the old set
  std::uint32_t targets = 0;      // bits of the new set
};
RangeCopies range_copies(const std::vector<std::string>& old_set, const std::vector<std::string>& new_set);

}  // namespace kv::tools
