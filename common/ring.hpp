// The consistent-hashing ring: an immutable value built by a pure function from a validated config.
//
// Each node gets weight x vnodes points at hash_point(id, i), i = 0 .. weight*vnodes-1. A key with hash
// h belongs to the node of the first point at or after h, wrapping past UINT64_MAX to the first point.
// Nodes are kept sorted by id and equal point hashes are ordered by node id, so any list order of the
// same file builds the same ring. Publish it as shared_ptr<const Ring>; it is read-only after build.
//
// With `replicas: N` a key's replica set is the first N distinct nodes met walking the points
// clockwise from its hash, preferring a zone not yet used while unused zones remain (replicas_of_hash).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"

namespace kv {

__extension__ typedef unsigned __int128 uint128;  // exact ownership: 2^64 hashes do not fit in 64 bits

struct RingNode {
  std::string id;
  HostPort address;
  std::uint32_t weight = 1;
  std::string zone;         // as configured; empty: none
  std::uint32_t zone_index = 0;  // dense; a node without a zone has one of its own
};

// A key's replicas: indices into Ring::nodes(), in placement order. The first is the key's owner
// (the one node of replicas: 1).
struct ReplicaSet {
  std::array<std::uint32_t, kMaxReplicas> node{};
  std::uint32_t size = 0;

  const std::uint32_t* begin() const noexcept { return node.data(); }
  const std::uint32_t* end() const noexcept { return node.data() + size; }
  bool contains(std::uint32_t n) const noexcept {
    for (std::uint32_t i = 0; i < size; ++i)
      if (node[i] == n) return true;
    return false;
  }
  friend bool operator==(const ReplicaSet& a, const ReplicaSet& b) noexcept {
    if (a.size != b.size) return false;
    for (std::uint32_t i = 0; i < a.size; ++i)
      if (a.node[i] != b.node[i]) return false;
    return true;
  }
};

// A maximal stretch of the hash space owned by one node: hashes in (start, end], wrapping when
// start >= end. An arc that covers the whole space has start == end.
struct Arc {
  std::uint64_t start = 0;  // exclusive: the previous point
  std::uint64_t end = 0;    // inclusive: this arc's last point
  std::uint32_t node = 0;   // index into Ring::nodes()
};

class Ring {
 public:
  static std::shared_ptr<const Ring> build(const RingConfig& config);

  // Index into nodes() of the owner of a hash / a key.
  std::uint32_t owner_of_hash(std::uint64_t h) const noexcept;
  std::uint32_t owner_of_key(std::string_view key) const noexcept;
  // The replica set of a hash / a key: replicas() nodes. Placement: walking the points clockwise
  // from the hash (the owner's point first), take each node not yet taken whose zone is not yet used,
  // while some zone is unused; then, walking again from the hash, the nodes not yet taken, in the
  // order met. Without zones that is the first N distinct nodes met. Costs a few point visits.
  ReplicaSet replicas_of_hash(std::uint64_t h) const noexcept;
  ReplicaSet replicas_of_key(std::string_view key) const noexcept;
  std::uint32_t replicas() const noexcept { return replicas_; }
  std::uint32_t zone_count() const noexcept { return zone_count_; }
  const RingNode& node(std::uint32_t index) const noexcept { return nodes_[index]; }
  std::span<const RingNode> nodes() const noexcept { return nodes_; }
  // Index of the node with this id, or -1.
  int find_node(std::string_view id) const noexcept;

  std::uint32_t vnodes() const noexcept { return vnodes_; }
  std::size_t point_count() const noexcept { return points_.size(); }
  std::uint64_t point(std::size_t i) const noexcept { return points_[i]; }
  std::uint32_t point_owner(std::size_t i) const noexcept { return owners_[i]; }

  // Exact share of the 2^64 hash space each node owns, as a count of hashes (sums to 2^64) and as a
  // fraction. Computed from arc lengths, not sampled.
  std::vector<uint128> ownership_exact() const;
  std::vector<double> ownership() const;
  // With replication: the share of the hash space each node holds a copy of (sums to replicas()).
  // Exact, from arc lengths: one placement per ring point, so it costs the ring's size times a few
  // point visits (for tools, not the request path).
  std::vector<uint128> holding_exact() const;
  std::vector<double> holding() const;

  // The ring as maximal arcs (adjacent points of one node merged), in hash order.
  std::vector<Arc> arcs() const;

 private:
  Ring() = default;
  // The replica set of the hashes point i owns: the walk of replicas_of_hash from point i.
  ReplicaSet replicas_from_point(std::size_t i) const noexcept;
  std::size_t first_point_at_or_after(std::uint64_t h) const noexcept;

  std::uint32_t vnodes_ = 0;
  std::uint32_t replicas_ = 1;
  std::uint32_t zone_count_ = 0;
  std::vector<RingNode> nodes_;          // sorted by id
  std::vector<std::uint64_t> points_;    // sorted ascending
  std::vector<std::uint16_t> owners_;    // owners_[i] owns points_[i]
  // bucket_[b] = index of the first point whose top bucket_bits_ bits are >= b; size 2^bits + 1.
  std::vector<std::uint32_t> bucket_;
  unsigned bucket_shift_ = 64;
};

}  // namespace kv
