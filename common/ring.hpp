// The consistent-hashing ring: an immutable value built by a pure function from a validated config.
//
// Each node gets weight x vnodes points at hash_point(id, i), i = 0 .. weight*vnodes-1. A key with hash
// h belongs to the node of the first point at or after h, wrapping past UINT64_MAX to the first point.
// Nodes are kept sorted by id and equal point hashes are ordered by node id, so any list order of the
// same file builds the same ring. Publish it as shared_ptr<const Ring>; it is read-only after build.
#pragma once

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

  // The ring as maximal arcs (adjacent points of one node merged), in hash order.
  std::vector<Arc> arcs() const;

 private:
  Ring() = default;

  std::uint32_t vnodes_ = 0;
  std::vector<RingNode> nodes_;          // sorted by id
  std::vector<std::uint64_t> points_;    // sorted ascending
  std::vector<std::uint16_t> owners_;    // owners_[i] owns points_[i]
  // bucket_[b] = index of the first point whose top bucket_bits_ bits are >= b; size 2^bits + 1.
  std::vector<std::uint32_t> bucket_;
  unsigned bucket_shift_ = 64;
};

}  // namespace kv
