// A node's hash trees (common/anti_entropy.hpp): one per replica set of the ring that holds this
// node, kept equal to what the store holds by following every change it makes (StoreObserver). No
// sockets: the sync API answers peers from these, the anti-entropy exchanger compares them.
//
// A key's set is its replica set with the members' order dropped: two arcs whose replicas are the
// same nodes in another order share one tree, on every node alike, since every node computes the
// sets from the same ring. Leaves are relaxed atomics changed by XOR, so writers of different keys
// never wait for each other, and a change's two XORs (the old digest out, the new one in) may
// interleave with any other's: XOR commutes. A reader sees each leaf as of some moment; an exchange
// that reads a tree during writes may see a difference that is gone a moment later, and fetching a
// key that turns out not newer costs bytes, never correctness (stores keep the newest tag).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/anti_entropy.hpp"
#include "common/ring.hpp"
#include "common/transfer.hpp"
#include "node/floors.hpp"
#include "node/purge_pause.hpp"
#include "node/store.hpp"

namespace kv {

// The digest of what a key holds (0 for nothing): hash_version of the kind and tag.
std::uint64_t version_digest(std::string_view stored_key, const Held& held) noexcept;
// The same of a versioned record (a value or a tombstone, with its tag).
inline std::uint64_t version_digest(const Record& r) noexcept {
  return version_digest(r.key, {r.tombstone ? Held::Kind::tombstone : Held::Kind::value, r.tag});
}

class ReplicaTrees final : public StoreObserver {
 public:
  struct Set {
    std::vector<std::uint32_t> members;  // ring node indices, ascending
    std::string name;                    // their ids, ascending, comma-separated (the wire name)
    std::unique_ptr<std::atomic<std::uint64_t>[]> leaves;  // anti_entropy::kSegments of them
    // Per bucket, the sum (mod 2^64) of the tag counters of what its keys hold: which side of a
    // differing bucket is ahead (common/anti_entropy.hpp).
    std::unique_ptr<std::atomic<std::uint64_t>[]> counters;  // anti_entropy::kBuckets of them
  };

  // The sets of `ring` that hold node `self` (an index into ring->nodes()), each with an empty tree.
  ReplicaTrees(std::shared_ptr<const Ring> ring, std::uint32_t self);

  // Fills the trees from everything `store` holds (a full scan). Call it before the store is
  // observed and written to (node/tree_builder.hpp builds while it is; this is its scan with nothing
  // noted). Returns the keys (values and tombstones) found.
  std::uint64_t build(Store& store);

  void changed(std::string_view key, const Held& before, const Held& now) noexcept override;
  // A floored write goes in where its key holds nothing only above the segment's floor (and only
  // once the floors are known). Without floors, always.
  bool admits(std::string_view key, const Tag& tag, std::uint64_t floors_seen) const noexcept override;
  // Set once, before the store is observed.
  void set_floors(Floors* floors) noexcept { floors_ = floors; }
  Floors* floors() const noexcept { return floors_; }
  // Whether purges may run (node/purge_pause.hpp); null: no purges at all (tests).
  void set_purge_pause(PurgePause* pause) noexcept { pause_ = pause; }
  PurgePause* purge_pause() const noexcept { return pause_; }

  const Ring& ring() const noexcept { return *ring_; }
  std::uint32_t self() const noexcept { return self_; }
  const std::vector<Set>& sets() const noexcept { return sets_; }
  // The index in sets() of a set by its wire name, or -1.
  int find(std::string_view name) const noexcept;
  // The index in sets() of the set of the keys with this ring hash, or -1 (a set without this node).
  int set_of_hash(std::uint64_t ring_hash) const noexcept;
  // The indices in sets() of the sets that hold node `peer` too.
  std::vector<std::size_t> shared_with(std::uint32_t peer) const;
  // This node's peers: the ring indices of the other nodes of its sets, ascending.
  const std::vector<std::uint32_t>& peers() const noexcept { return peers_; }

  std::uint64_t leaf(std::size_t set, std::uint32_t segment) const noexcept {
    return sets_[set].leaves[segment].load(std::memory_order_relaxed);
  }
  // anti_entropy::kBuckets hashes, each the XOR of its kFanout leaves.
  std::vector<std::uint64_t> buckets(std::size_t set) const;
  // anti_entropy::kBuckets counter sums.
  std::vector<std::uint64_t> counter_sums(std::size_t set) const;
  // The kFanout leaves of `bucket`, appended to `out`.
  void append_leaves(std::size_t set, std::uint32_t bucket, std::vector<std::uint64_t>& out) const;

 private:
  // A set's members, whatever their order, as one number (the key of by_members_).
  static std::uint64_t pack(const ReplicaSet& rs) noexcept;

  std::shared_ptr<const Ring> ring_;
  std::uint32_t self_;
  std::vector<Set> sets_;
  std::unordered_map<std::uint64_t, std::size_t> by_members_;  // pack(members) -> index in sets_
  std::vector<std::uint32_t> peers_;
  Floors* floors_ = nullptr;
  PurgePause* pause_ = nullptr;
};

}  // namespace kv
