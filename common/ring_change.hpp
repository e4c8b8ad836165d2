// A change of ring, from OLD to NEW: which stretches of the hash space change owner, how much of the
// key space moves between which nodes against the ideal, and whether the change is one a rebalance
// can carry out. Pure functions of two rings; ring-rebalance plans with them, kvproxy fingerprints
// rings with them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/ring.hpp"

namespace kv {

// Hashes lo..hi, both inclusive, lo <= hi (never wraps).
struct HashRange {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  friend bool operator==(const HashRange&, const HashRange&) = default;
};

// A stretch of the hash space whose owner changes: `from` indexes the old ring's nodes(), `to` the
// new ring's. Owners are compared by id: the ring hashes ids, and the data lives with the id.
struct Move {
  HashRange range;
  std::uint32_t from = 0;
  std::uint32_t to = 0;
};

// Every range whose owner differs between the rings, in hash order, adjacent ranges with the same
// (from, to) merged. Exact: a linear merge of both rings' points.
std::vector<Move> moved_ranges(const Ring& from, const Ring& to);

// A stretch of the hash space whose replica set changes (replicas: N, either ring): the set in each
// ring, as node indices of that ring in placement order. Sets are compared as sets of ids: the same
// nodes in another order hold the same data. With replicas 1 in both rings these are moved_ranges'.
struct ReplicaMove {
  HashRange range;
  ReplicaSet from;
  ReplicaSet to;
};

// Every range whose replica set differs between the rings, in hash order, adjacent ranges with the
// same sets merged. Exact: the sets are constant between two consecutive points of either ring.
std::vector<ReplicaMove> replica_moves(const Ring& from, const Ring& to);

// A ring's identity for agreement checks between processes: 16 hex digits over vnodes, replicas and
// the sorted (id, address, weight, zone) of every node. The proxy: section does not count. A ring
// with replicas 1 and no zones has the fingerprint it had before those fields existed.
std::string ring_fingerprint(const RingConfig& config);

// Refuses changes that a rebalance must not make, with an exact "file: field: reason" message:
// a different vnodes (it would move almost every key), a node id moving to another address (its data
// stays at the old one), an address passing to another id (a rename is not a rebalance).
void check_change(const RingConfig& from, std::string_view from_source, const RingConfig& to,
                  std::string_view to_source);

// The plan's numbers. Shares are fractions of the whole hash space.
struct PlanNode {
  std::string id;
  std::string address;
  std::uint32_t weight_before = 0, weight_after = 0;  // 0: not in that ring
  double before = 0, after = 0;                       // exact ownership
  double ideal_before = 0, ideal_after = 0;           // weight / total weight
  // With replication: the share of the hash space the node holds a copy of (equal to the ownership
  // above with replicas 1), and the ideal: proportional to weight, replicas in all, at most 1 each.
  double held_before = 0, held_after = 0;
  double ideal_held_before = 0, ideal_held_after = 0;
};

struct PlanFlow {
  std::string from, to;  // node ids
  double share = 0;      // of the hash space, exact
  double ideal = 0;      // the least any ring could move between these two, given the weights
  std::size_t ranges = 0;
};

struct Plan {
  std::vector<PlanNode> nodes;  // sorted by id: every node of either ring
  std::vector<PlanFlow> flows;  // sorted by (from, to)
  std::vector<Move> moves;
  double moved = 0;        // total share changing owner
  double ideal_moved = 0;  // half the L1 distance between the ideal shares before and after
  std::string from_fingerprint, to_fingerprint;
  std::uint32_t replicas_before = 1, replicas_after = 1;
};

// The ideal shares of the hash space that nodes of these weights hold copies of with `replicas`
// copies per key: proportional to weight, none above 1 (what a node above 1 would hold is shared out
// among the others). Sums to replicas when replicas <= weights.size().
std::vector<double> ideal_holding(const std::vector<std::uint32_t>& weights, std::uint32_t replicas);

Plan make_plan(const RingConfig& from_config, const Ring& from, const RingConfig& to_config, const Ring& to);

// The share of the hash space a range covers.
double range_share(const HashRange& r);

}  // namespace kv
