#include "node/replica_trees.hpp"

#include <algorithm>
#include <array>
#include <set>

#include "common/hash.hpp"
#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "node/tree_builder.hpp"

namespace kv {

namespace ae = anti_entropy;

std::uint64_t version_digest(std::string_view stored_key, const Held& held) noexcept {
  switch (held.kind) {
    case Held::Kind::nothing: return 0;
    case Held::Kind::value: return hash_version(stored_key, 'v', held.tag.counter, held.tag.writer);
    case Held::Kind::tombstone: return hash_version(stored_key, 't', held.tag.counter, held.tag.writer);
  }
  return 0;
}

// Up to kMaxReplicas indices below kMaxNodes (4096: 12 bits), each stored plus one in 12 bits. On
// every write's path: sorts a copy on the stack, no allocation.
std::uint64_t ReplicaTrees::pack(const ReplicaSet& rs) noexcept {
  std::array<std::uint32_t, kMaxReplicas> members = rs.node;
  std::fill(members.begin() + rs.size, members.end(), ~std::uint32_t{0});  // the unused slots sort last
  std::sort(members.begin(), members.end());
  std::uint64_t key = 0;
  for (std::uint32_t i = 0; i < rs.size; ++i) key = (key << 12) | (members[i] + 1);
  return key;
}

ReplicaTrees::ReplicaTrees(std::shared_ptr<const Ring> ring, std::uint32_t self) : ring_(std::move(ring)), self_(self) {
  // Every arc's set is the placement from its point (Ring::replicas_of_hash of the point itself).
  // Nodes are sorted by id, so ascending indices are ascending ids: the sets come out ordered by
  // their names.
  std::set<std::vector<std::uint32_t>> distinct;
  for (std::size_t i = 0; i < ring_->point_count(); ++i) {
    const ReplicaSet rs = ring_->replicas_of_hash(ring_->point(i));
    if (!rs.contains(self_)) continue;
    std::vector<std::uint32_t> members(rs.begin(), rs.end());
    std::sort(members.begin(), members.end());
    distinct.insert(std::move(members));
  }
  std::set<std::uint32_t> peers;
  for (const auto& members : distinct) {
    Set set;
    ReplicaSet rs;
    for (auto m : members) {
      set.name += (set.name.empty() ? "" : ",") + ring_->node(m).id;
      rs.node[rs.size++] = m;
      if (m != self_) peers.insert(m);
    }
    set.members = members;
    set.leaves = std::make_unique<std::atomic<std::uint64_t>[]>(ae::kSegments);
    for (std::uint32_t s = 0; s < ae::kSegments; ++s) set.leaves[s].store(0, std::memory_order_relaxed);
    set.counters = std::make_unique<std::atomic<std::uint64_t>[]>(ae::kBuckets);
    for (std::uint32_t b = 0; b < ae::kBuckets; ++b) set.counters[b].store(0, std::memory_order_relaxed);
    by_members_.emplace(pack(rs), sets_.size());
    sets_.push_back(std::move(set));
  }
  peers_.assign(peers.begin(), peers.end());
}

std::uint64_t ReplicaTrees::build(Store& store) {
  const std::atomic<bool> never{false};
  return *TreeBuilder(*this).build(store, never);  // nothing writes meanwhile: nothing is noted
}

void ReplicaTrees::changed(std::string_view key, const Held& before, const Held& now) noexcept {
  if (key.size() < kStorageKeyPrefix) return;
  const std::uint64_t h = read_be64(key);
  const int set = set_of_hash(h);
  if (set < 0) return;  // a key of no set of this node's: in no tree
  const std::uint64_t d = version_digest(key, before) ^ version_digest(key, now);
  const std::uint32_t segment = ae::segment_of(h);
  Set& s = sets_[static_cast<std::size_t>(set)];
  s.leaves[segment].fetch_xor(d, std::memory_order_relaxed);
  // Nothing held counts 0; the sum wraps, and only differences between replicas are compared.
  s.counters[segment / ae::kFanout].fetch_add(now.tag.counter - before.tag.counter, std::memory_order_relaxed);
}

int ReplicaTrees::find(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < sets_.size(); ++i)
    if (sets_[i].name == name) return static_cast<int>(i);
  return -1;
}

bool ReplicaTrees::admits(std::string_view key, const Tag& tag, std::uint64_t floors_seen) const noexcept {
  return !floors_ || key.size() < kStorageKeyPrefix || floors_->admits(read_be64(key), tag.counter, floors_seen);
}

int ReplicaTrees::set_of_hash(std::uint64_t ring_hash) const noexcept {
  const ReplicaSet rs = ring_->replicas_of_hash(ring_hash);
  if (!rs.contains(self_)) return -1;
  const auto it = by_members_.find(pack(rs));
  return it == by_members_.end() ? -1 : static_cast<int>(it->second);
}

std::vector<std::size_t> ReplicaTrees::shared_with(std::uint32_t peer) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < sets_.size(); ++i)
    if (std::binary_search(sets_[i].members.begin(), sets_[i].members.end(), peer)) out.push_back(i);
  return out;
}

std::vector<std::uint64_t> ReplicaTrees::buckets(std::size_t set) const {
  std::vector<std::uint64_t> out(ae::kBuckets, 0);
  for (std::uint32_t s = 0; s < ae::kSegments; ++s) out[s / ae::kFanout] ^= leaf(set, s);
  return out;
}

std::vector<std::uint64_t> ReplicaTrees::counter_sums(std::size_t set) const {
  std::vector<std::uint64_t> out(ae::kBuckets);
  for (std::uint32_t b = 0; b < ae::kBuckets; ++b) out[b] = sets_[set].counters[b].load(std::memory_order_relaxed);
  return out;
}

void ReplicaTrees::append_leaves(std::size_t set, std::uint32_t bucket, std::vector<std::uint64_t>& out) const {
  for (std::uint32_t s = bucket * ae::kFanout; s < (bucket + 1) * ae::kFanout; ++s) out.push_back(leaf(set, s));
}

}  // namespace kv
