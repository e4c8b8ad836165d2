// The one rule of versioned writes (common/version.hpp), written once for both storage engines: given
// what a key holds and a write, whether the write goes in, with which tag, and what it answers. Pure
// but for the node's counter (NodeTags), which makes the tags of untagged writes; each engine runs it
// inside its atomic step per key and stores the outcome its own way.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "common/transfer.hpp"
#include "common/version.hpp"
#include "node/store.hpp"

namespace kv {

// The tags a node makes for untagged writes: one node-wide counter, kept above every counter the
// node has stored (NodeTags' invariant: next() > the counter of every value and tombstone held).
// Then an untagged write's tag, (next()++, a unique writer), is newer than whatever its key holds
// without reading it: the RocksDB engine's plain put is a blind write. Each engine keeps the
// invariant: every applied write's counter goes through saw() (a tagged one's) or take() (a made
// one's) inside the key's atomic step, before the write is visible; and at open next() starts above
// every counter on disk (store_rocksdb.cpp: a durable reservation; memory: nothing on disk, 1).
// Thread-safe; writes of one key are ordered by the engine's atomic step, and the counter only grows.
class NodeTags {
 public:
  explicit NodeTags(std::uint64_t next = 1) : next_(next) {}
  // A new tag: the counter's next value, with a writer unique to this write.
  Tag take() noexcept {
    const std::uint64_t c = next_.fetch_add(1, std::memory_order_relaxed);
    return maker_.next({c - 1, 0});  // TagMaker::next: one counter above what it is shown
  }
  // A tag newer than `held` (what the key holds, if the engine read it). The invariant makes take()
  // newer already; this only guards it.
  Tag take_after(const Tag& held) noexcept {
    saw(held.counter);
    return take();
  }
  // A counter stored (a tagged write applied, an ingested record): the counter moves above it.
  void saw(std::uint64_t counter) noexcept {
    std::uint64_t cur = next_.load(std::memory_order_relaxed);
    while (cur <= counter && !next_.compare_exchange_weak(cur, counter + 1, std::memory_order_relaxed)) {
    }
  }
  std::uint64_t next() const noexcept { return next_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> next_;
  TagMaker maker_;  // the writer halves: a random per-process half and a sequence
};


// The rule for a put or a delete over `held`:
//   untagged put: apply (the store makes a tag newer than held's); untagged delete: apply if a value
//   is held, else keep (no tombstone for a key that holds none: nothing to order);
//   tagged: apply if nothing is held or the tag is newer; keep if older, or equal and Tag{} (the tag
//   of plain records and of data from before versions, which carries no order: put-if-absent);
//   equal and real: the same kind and value is the same write (keep), anything else a conflict.
Verdict judge(const WriteOp& op, const Held& held) noexcept;

// A write decided: its verdict (never compare_values) and what the key holds after it.
struct Outcome {
  Verdict verdict = Verdict::keep;
  Held now;
};

// Runs judge(), settling compare_values with `same_value()` (is the held value equal to op.value?),
// which is asked for nothing else, so an engine reads the held value only then. An applied write's
// tag is its own (and the node's counter moves above it), or for an untagged one a new one from the
// node's counter. An untagged put is always applied with a new tag, whatever is held: an engine may
// skip the read and decide it with untagged_put() instead.
// `floors`: Store::floor_verdict(op, held), asked by the engine in the same atomic step.
template <class SameValue>
Outcome decide(const WriteOp& op, const Held& held, NodeTags& tags, std::optional<Verdict> floors, SameValue&& same_value) {
  if (floors) return {*floors, held};
  Verdict v = judge(op, held);
  if (v == Verdict::compare_values) v = same_value() ? Verdict::keep : Verdict::conflict;
  if (v != Verdict::apply) return {v, held};
  const Held::Kind kind = op.kind == WriteOp::Kind::del ? Held::Kind::tombstone : Held::Kind::value;
  if (op.tag) tags.saw(op.tag->counter);
  return {v, {kind, op.tag ? *op.tag : tags.take_after(held.tag)}};
}

// decide() for an untagged put, without what the key holds: applied, with the counter's next tag
// (newer than anything held, by NodeTags' invariant).
inline Outcome untagged_put(NodeTags& tags) noexcept { return {Verdict::apply, {Held::Kind::value, tags.take()}}; }

// The answer to a decided put or delete (WriteResult's fields). An untagged put's had_value is
// false: it is decided without reading what it replaces (untagged_put), so `before` is not known.
WriteResult result_of(const WriteOp& op, const Held& before, const Outcome& outcome);

// Whether a drop_value / drop_tombstone / purge_tombstone op deletes a key that holds `held`.
bool is_drop(WriteOp::Kind kind) noexcept;
bool drops(const WriteOp& op, const Held& held) noexcept;

// An ingested record as the tagged write it is; with `floors_seen`, a floored one (WriteOp).
WriteOp op_of(const Record& r, std::uint64_t floors_seen = 0);

// A refused write, on stderr (one line per occurrence): two writes with one tag are a bug somewhere.
void report_conflict(std::string_view stored_key, const Tag& tag);

}  // namespace kv
