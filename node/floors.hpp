// Tombstones purged by evidence, not by time (REPLICATION.md, guarantee 5), and the per-segment
// floors that make a purge safe.
//
// A tombstone keeps a deleted key deleted: a delayed store of an older write of the key finds it and
// is superseded. Dropping it is safe only when nothing can bring an older write back. So:
//   1. Evidence. A node purges only tombstones it listed before an anti-entropy round (and settled
//      into its trees), in buckets whose hash it found, in that round, equal to every peer's of the
//      set, its own the same at each comparison: every replica then held those tombstones (a 64-bit
//      XOR hash of the exact versions). A tombstone is dropped only if its key still holds exactly
//      it; then it held it all round.
//   2. Floors, raised everywhere first. Each segment (common/anti_entropy.hpp) keeps a floor: the
//      greatest tag counter of the tombstones purged in it. The node raises the floors on itself, then
//      asks every peer of the set, at the incarnation that showed the evidence, to raise them and drop
//      the same tombstones (POST /replica/purge; a peer that lost its data since refuses, and this
//      node drops nothing), then drops its own. Raising is durable before anything is dropped. All
//      replicas let go at about one time, so none pulls a tombstone back from another one for long.
// From then on a coordinator's store of a value (/replica/put, a read's write-back) where the key
// holds nothing goes in only with a tag above the floor: a delayed store of the purged key's older
// write is refused (409, X-KV-Floor), surely not stored, as is, rarely, a store of another key of the
// segment whose tag query came before the floor rose (the write then fails with outcome "none", or
// succeeds on the replicas that took it before). A tombstone is never refused: it brings nothing
// back. A tag query of a key that holds nothing answers the floor, so new writes get tags above it.
//
// Why anti-entropy's pulls are checked only when a floor rose meanwhile: no replica holds an older
// write of a purged key after the evidence. Each replica held the tombstone then; it keeps it until a
// purge (floor raised first) or a newer write; its coordinator stores are checked. So what a peer
// holds when asked is no older write of a purged key; only a pull asked for before a purge and stored
// after it could be, and the floors' generation tells those (Floors::admits). A replica whose data
// went back in time breaks the premise: a new or wiped directory learns every peer's floors before it
// admits any coordinator store (until then it refuses them, X-KV-Floor: unknown), and a directory
// restored from a backup must be started with kvnode --recover, which discards it (it may hold writes
// deleted since, whose tombstones are gone).
//
// Why purging was off by default until the multi-host suite had run with it on for a while (it is on
// now; kvnode --keep-tombstones turns it off), and what its runs found. Quorum reads rely on every
// replica's state only moving forward in tag order; a purge moves a replica from the tombstone back
// to "nothing" (tag 0.0). The multi-host suite under ASan found the consequence: a read through a
// proxy cut off from two replicas got its first answer, the deleted value, from the third one, which
// had not seen the delete yet; by the time the other two answered they had purged the tombstone and
// said "nothing", so the stale value was the newest the read saw; its write-back was refused below
// the floor where the key held nothing, but taken as superseded where a newer write had landed
// meanwhile, which counts as holding it: the read returned a value deleted before it began. The floor
// a "nothing" answer carries is the only trace of the purged tombstone, and it is per segment, not
// per key: a read cannot tell "this key was deleted and purged" from "this replica missed this key".
// So (proxy/quorum.hpp, ambiguous()): when a value's tag is not above a floor some answer carries, a
// read counts only replicas that hold exactly that version (answers, applied write-backs), never a
// superseded write-back, and a delete reports "present" only on a majority of its answers. Why that
// suffices: a delete D that completed before the read left a majority holding its tombstone or newer;
// a majority holding exactly the older value V meets it in a replica that went from D's tombstone
// back to V, which takes a purge (its floor raised first to D's counter, not below V's) and then a
// store of V where the key holds nothing, which that floor refuses (a counter must be above it). And
// when no answer carries such a floor, the replica both majorities share answered D or newer. (A proxy-cut-off run also ended with a deleted value
// back on every replica: a tombstone re-made below the floor by a write-back or a pull, which let the
// older value in by its tag. So a tombstone at or below its segment's floor does not shield its key:
// a floored store of a value newer than it goes in only above the floor, as where the key holds
// nothing (Floors::admits of the tombstone's own tag), and a tag query answers the floor there too.) Since those changes no
// run of the multi-host suite with purging on (KVRING_MULTIHOST_NODE_FLAGS) has found a wrong history,
// where one in four had. The rule costs availability instead: a read that overlaps a delete and its
// purge can find the old value on one replica and "nothing" below the floor on another, and with a
// third cut off it failed (503) where it could have answered; two of 21 release runs on 2026-12-05 had
// one such read. So such a read (or delete) now queries again, once, before it fails
// (Quorum::Action::requery): by then the replica that was late has the delete, or the value is held
// by a majority. The second round is a read of its own, inside the client's request, and the first
// stored nothing a purge did not allow (a write-back of the old value is refused by the floor where
// the key was purged). Across ring changes purging is unsafe, and the suite shows how (multihost's
// FloorWatch and history, change-replace, during R = {n1,n4,n5} -> A = {n1,n2,n3}): a proxy already
// storing to both sets put V (tag ...293) on all five; a delete (tombstone ...297) reached n1, n4
// and n5 only (most likely from a proxy still on R alone); n1, still exchanging by R, found that set
// equal and purged it 25 ms later, floors raised to ...297 on n1, n4, n5. n2 and n3, replicas of the key in A, still held
// V: a majority of A holding exactly a deleted value, which a read by A alone returns once the change
// ends (the copy brings nothing for a purged key; without purging it brings the tombstone), and
// which anti-entropy would pull into n1 (a pull is checked against the floors only when they rose
// meanwhile). The runs caught it as reads failing on the joint quorum (V on n2, n3; nothing below
// the floor on n1, n4) before new writes covered V. The evidence of a purge must cover every replica
// a proxy may ask, and during a change that is the union of the old and new sets. So no node purges
// during a change: ring-rebalance apply pauses every node of both rings before any node adopts the
// new ring or any proxy stores to a new set, each answering once its purge in flight ended, and
// resumes them once the moved ranges are dropped (node/purge_pause.hpp says how a node that missed
// the pause is kept from purging). With that, the suite passed every run with purging on, by hand, at
// length and in CI (bench/RESULTS.md), and purging became kvnode's default.
//
// A purge cut short. The node that found the evidence asks its peers in turn; if it dies (or adopts a
// ring) after some peers dropped the tombstones and before the others were asked, its retry is gone
// with it (node/anti_entropy.hpp keeps retries in memory). The replicas then differ in that bucket:
// some hold the tombstones, the others hold nothing there, their floors raised. Those take the
// tombstones back in their next exchange: a tombstone is never refused, at or below a floor too. (It
// once was, "buried", for the reason above; not shielding does the same job, and then nothing keeps
// the buckets apart for good, which had kept that bucket's later tombstones from ever being purged.)
// Taking one back is safe: it moves the key forward from "nothing" to a deletion, brings nothing back,
// and refuses, as the floor did, any store of a value not above the floor. The buckets then agree,
// and a later round purges the tombstones everywhere on evidence of its own. The same goes for a new
// replica that a ring change gave a tombstone its other replicas had dropped.
//
// Floors only rise. They are kept in the store's meta records (node/floor/<segment, 4 hex digits>),
// one per segment that has one. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/anti_entropy.hpp"
#include "node/store.hpp"

namespace kv {

class Floors {
 public:
  // Loads the floors kept in `store`. `learn`: this directory must learn the floors of `peers`
  // before it admits a coordinator's store (a new directory, or one whose data was discarded); an
  // earlier start that had not finished learning resumes it.
  Floors(Store& store, std::vector<std::string> peers, bool learn);

  std::uint64_t floor_of_hash(std::uint64_t ring_hash) const noexcept {
    return floors_[anti_entropy::segment_of(ring_hash)].load(std::memory_order_acquire);
  }
  std::uint64_t floor(std::uint32_t segment) const noexcept { return floors_[segment].load(std::memory_order_acquire); }
  // Every peer's floors were learned (or none had to be).
  bool known() const noexcept { return known_.load(std::memory_order_acquire); }
  // Whether a store of a tag with this counter may go in where its key holds nothing: a coordinator's
  // (floors_seen 0) only above the floor, once the floors are known; a record anti-entropy pulled
  // under generation `floors_seen`, always while no floor has risen since, else the same. With
  // floors_seen 0 it also says whether a tombstone of this counter that a key holds shields it (keeps
  // an older value out by its tag alone): one at or below the floor may have been taken back after a
  // purge of a newer one, so a store where the key holds it is checked as where it holds nothing.
  bool admits(std::uint64_t ring_hash, std::uint64_t counter, std::uint64_t floors_seen = 0) const noexcept {
    if (floors_seen != 0 && floors_seen == generation()) return true;
    return known() && counter > floor_of_hash(ring_hash);
  }
  // Rises with every raise(), before it returns (from 1).
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

  // Raises each segment's floor to at least the one given, durably (one write), before it returns;
  // in memory first, so that no store is admitted below a floor being written. Throws StoreError.
  void raise(const std::vector<anti_entropy::SegmentFloor>& floors);
  // Every segment that has a floor, ascending.
  std::vector<anti_entropy::SegmentFloor> all() const;
  std::size_t segments() const noexcept { return segments_.load(std::memory_order_relaxed); }
  // Tombstones this node purged (its own purges and its peers' asks), since it started.
  void count_purged(std::uint64_t n) noexcept { purged_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t purged() const noexcept { return purged_.load(std::memory_order_relaxed); }

  // Learning: `peer`'s floors were raised here (raise() first); once every peer's were, known().
  void learned_from(std::string_view peer);
  std::size_t peers_learned() const;
  std::size_t peer_count() const;
  // The node adopted a ring with these peers (node/replication.hpp): learning, if not done, starts
  // again from them, as at a start on that ring.
  void set_peers(std::vector<std::string> peers);

 private:
  Store& store_;
  std::vector<std::string> peers_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> floors_;  // anti_entropy::kSegments of them
  std::atomic<std::size_t> segments_{0};                  // with a floor above 0
  std::atomic<bool> known_{true};
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<std::uint64_t> purged_{0};
  mutable std::mutex mutex_;                        // raise() and learning
  std::set<std::string, std::less<>> learned_;      // peers learned from, while learning
};

}  // namespace kv
