#include "common/ring.hpp"

#include <algorithm>
#include <bit>
#include <map>
#include <numeric>

#include "common/hash.hpp"

namespace kv {

std::shared_ptr<const Ring> Ring::build(const RingConfig& config) {
  validate_ring_config(config, "ring");
  static_assert(kMaxNodes <= 65536, "owners_ holds node indices in 16 bits");

  std::shared_ptr<Ring> r(new Ring());
  r->vnodes_ = config.vnodes;
  r->replicas_ = config.replicas;
  for (const auto& n : config.nodes) r->nodes_.push_back(RingNode{n.id, n.address, n.weight, n.zone, 0});
  std::sort(r->nodes_.begin(), r->nodes_.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  {
    std::map<std::string, std::uint32_t> zones;  // indices follow the id order of each zone's first node
    for (auto& n : r->nodes_) {
      n.zone_index = r->zone_count_;
      if (!n.zone.empty()) {
        const auto [it, fresh] = zones.try_emplace(n.zone, r->zone_count_);
        n.zone_index = it->second;
        if (!fresh) continue;
      }
      ++r->zone_count_;
    }
  }

  struct Point {
    std::uint64_t hash;
    std::uint16_t node;
  };
  std::vector<Point> pts;
  std::size_t total = 0;
  for (const auto& n : r->nodes_) total += std::size_t{n.weight} * config.vnodes;
  pts.reserve(total);
  for (std::uint16_t ni = 0; ni < r->nodes_.size(); ++ni) {
    const auto& n = r->nodes_[ni];
    const std::uint32_t count = n.weight * config.vnodes;
    for (std::uint32_t i = 0; i < count; ++i) pts.push_back({hash_point(n.id, i), ni});
  }
  // Sort by (hash, node): node indices follow id order, so the result is independent of the file's
  // list order. A counting sort on the top 16 bits leaves buckets of a few dozen points, each then
  // sorted on its own: several times faster than one std::sort over millions of points.
  constexpr unsigned kRadixBits = 16;
  std::vector<std::uint32_t> start((1u << kRadixBits) + 1, 0);
  for (const auto& p : pts) ++start[(p.hash >> (64 - kRadixBits)) + 1];
  for (std::size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
  std::vector<Point> sorted(pts.size());
  {
    std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
    for (const auto& p : pts) sorted[fill[p.hash >> (64 - kRadixBits)]++] = p;
  }
  pts.clear();
  pts.shrink_to_fit();
  for (std::size_t b = 0; b + 1 < start.size(); ++b)
    std::sort(sorted.begin() + start[b], sorted.begin() + start[b + 1],
              [](const Point& a, const Point& c) { return a.hash != c.hash ? a.hash < c.hash : a.node < c.node; });
  pts.swap(sorted);

  r->points_.resize(pts.size());
  r->owners_.resize(pts.size());
  for (std::size_t i = 0; i < pts.size(); ++i) {
    r->points_[i] = pts[i].hash;
    r->owners_[i] = pts[i].node;
  }

  // About four points per bucket: one index load and a search within a cache line or two.
  const unsigned bits = std::clamp<unsigned>(std::bit_width(pts.size()) > 3 ? std::bit_width(pts.size()) - 3 : 1, 1, 22);
  r->bucket_shift_ = 64 - bits;
  const std::size_t buckets = std::size_t{1} << bits;
  r->bucket_.resize(buckets + 1);
  std::size_t p = 0;
  for (std::size_t b = 0; b < buckets; ++b) {
    while (p < r->points_.size() && (r->points_[p] >> r->bucket_shift_) < b) ++p;
    r->bucket_[b] = static_cast<std::uint32_t>(p);
  }
  r->bucket_[buckets] = static_cast<std::uint32_t>(r->points_.size());
  return r;
}

std::size_t Ring::first_point_at_or_after(std::uint64_t h) const noexcept {
  const std::size_t b = h >> bucket_shift_;
  const auto first = points_.begin() + bucket_[b];
  const auto last = points_.begin() + bucket_[b + 1];
  auto it = std::lower_bound(first, last, h);
  // Nothing at or after h in its bucket: the answer is the first point of a later bucket, which is
  // exactly `last` (all later points are greater than h); past the end wraps to point 0.
  std::size_t i = static_cast<std::size_t>(it - points_.begin());
  return i == points_.size() ? 0 : i;
}

std::uint32_t Ring::owner_of_hash(std::uint64_t h) const noexcept { return owners_[first_point_at_or_after(h)]; }

std::uint32_t Ring::owner_of_key(std::string_view key) const noexcept { return owner_of_hash(hash_key(key)); }

ReplicaSet Ring::replicas_from_point(std::size_t start) const noexcept {
  ReplicaSet set;
  set.node[set.size++] = owners_[start];
  if (replicas_ == 1) return set;
  const std::size_t n = points_.size();
  // Zones used so far: at most kMaxReplicas of them.
  std::array<std::uint32_t, kMaxReplicas> used{};
  std::uint32_t used_count = 0;
  used[used_count++] = nodes_[owners_[start]].zone_index;
  auto zone_used = [&](std::uint32_t z) {
    for (std::uint32_t i = 0; i < used_count; ++i)
      if (used[i] == z) return true;
    return false;
  };
  // First walk: a node of an unused zone, while unused zones remain (a full circle meets every node).
  for (std::size_t k = 1; k < n && set.size < replicas_ && used_count < zone_count_; ++k) {
    const std::uint32_t node = owners_[(start + k) % n];
    const std::uint32_t zone = nodes_[node].zone_index;
    if (set.contains(node) || zone_used(zone)) continue;
    set.node[set.size++] = node;
    used[used_count++] = zone;
  }
  // Second walk, once every zone is used: the nodes not yet taken, in the order met.
  for (std::size_t k = 1; k < n && set.size < replicas_; ++k) {
    const std::uint32_t node = owners_[(start + k) % n];
    if (!set.contains(node)) set.node[set.size++] = node;
  }
  return set;
}

ReplicaSet Ring::replicas_of_hash(std::uint64_t h) const noexcept { return replicas_from_point(first_point_at_or_after(h)); }

ReplicaSet Ring::replicas_of_key(std::string_view key) const noexcept { return replicas_of_hash(hash_key(key)); }

int Ring::find_node(std::string_view id) const noexcept {
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), id, [](const RingNode& n, std::string_view v) { return n.id < v; });
  return it != nodes_.end() && it->id == id ? static_cast<int>(it - nodes_.begin()) : -1;
}

std::vector<uint128> Ring::ownership_exact() const {
  std::vector<uint128> own(nodes_.size(), 0);
  const std::size_t n = points_.size();
  if (n == 0) return own;
  // Point i owns (points_[i-1], points_[i]]; point 0 owns the wrap-around arc. Unsigned subtraction
  // is the arc length mod 2^64, except that a lone point owns all 2^64 hashes.
  if (std::all_of(owners_.begin(), owners_.end(), [&](auto o) { return o == owners_[0]; })) {
    own[owners_[0]] = static_cast<uint128>(1) << 64;
    return own;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t prev = points_[i == 0 ? n - 1 : i - 1];
    own[owners_[i]] += static_cast<std::uint64_t>(points_[i] - prev);
  }
  return own;
}

namespace {

// Counts of hashes as fractions of the 2^64 hashes.
std::vector<double> fractions_of_space(const std::vector<uint128>& exact) {
  std::vector<double> out(exact.size());
  for (std::size_t i = 0; i < exact.size(); ++i) out[i] = static_cast<double>(exact[i]) / 18446744073709551616.0;
  return out;
}

}  // namespace

std::vector<double> Ring::ownership() const { return fractions_of_space(ownership_exact()); }

std::vector<uint128> Ring::holding_exact() const {
  if (replicas_ == 1) return ownership_exact();
  std::vector<uint128> held(nodes_.size(), 0);
  const std::size_t n = points_.size();
  // replicas_ >= 2 means at least two nodes, so no lone point owns the whole space.
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t length = points_[i] - points_[i == 0 ? n - 1 : i - 1];
    for (std::uint32_t node : replicas_from_point(i)) held[node] += length;
  }
  return held;
}

std::vector<double> Ring::holding() const { return fractions_of_space(holding_exact()); }

std::vector<Arc> Ring::arcs() const {
  std::vector<Arc> out;
  const std::size_t n = points_.size();
  if (n == 0) return out;
  // Start at a point whose predecessor belongs to another node, so no arc is split at index 0.
  std::size_t start = 0;
  while (start < n && owners_[start] == owners_[start == 0 ? n - 1 : start - 1]) ++start;
  if (start == n) return {Arc{points_[n - 1], points_[n - 1], owners_[0]}};  // one node owns everything
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (start + k) % n;
    const std::size_t prev = i == 0 ? n - 1 : i - 1;
    if (k == 0 || owners_[i] != owners_[prev]) out.push_back(Arc{points_[prev], points_[i], owners_[i]});
    else out.back().end = points_[i];
  }
  return out;
}

}  // namespace kv
