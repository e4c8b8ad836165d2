// The one rule of versioned writes (common/version.hpp), written once for both storage engines: given
// what a key holds and a write, whether the write goes in, with which tag, and what it answers. Pure
// but for the tag a TagMaker makes; each engine runs it inside its atomic step per key and stores
// the outcome its own way.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/transfer.hpp"
#include "common/version.hpp"
#include "node/store.hpp"

namespace kv {

// What a key holds, as far as ordering goes.
struct Held {
  enum class Kind : std::uint8_t { nothing, value, tombstone };
  Kind kind = Kind::nothing;
  Tag tag{};  // Tag{} with nothing

  bool value() const noexcept { return kind == Kind::value; }
  bool tombstone() const noexcept { return kind == Kind::tombstone; }
};

enum class Verdict : std::uint8_t {
  apply,           // store the write
  keep,            // leave the key as it is: superseded, the same write again, or an untagged delete of no value
  conflict,        // refuse it: its tag is held by another write (a bug somewhere, not a tie)
  compare_values,  // the same real tag as the value held: keep if the values are equal, else conflict
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
// tag is its own, or for an untagged one `tags.next(held.tag)`.
template <class SameValue>
Outcome decide(const WriteOp& op, const Held& held, TagMaker& tags, SameValue&& same_value) {
  Verdict v = judge(op, held);
  if (v == Verdict::compare_values) v = same_value() ? Verdict::keep : Verdict::conflict;
  if (v != Verdict::apply) return {v, held};
  const Held::Kind kind = op.kind == WriteOp::Kind::del ? Held::Kind::tombstone : Held::Kind::value;
  return {v, {kind, op.tag ? *op.tag : tags.next(held.tag)}};
}

// The answer to a decided put or delete (WriteResult's fields).
WriteResult result_of(const WriteOp& op, const Held& before, const Outcome& outcome);

// Whether a drop_value / drop_tombstone op deletes a key that holds `held`.
bool drops(WriteOp::Kind kind, const Held& held) noexcept;

// An ingested record as the tagged write it is.
WriteOp op_of(const Record& r);

// A refused write, on stderr (one line per occurrence): two writes with one tag are a bug somewhere.
void report_conflict(std::string_view stored_key, const Tag& tag);

}  // namespace kv
