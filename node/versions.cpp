#include "node/versions.hpp"

#include <unistd.h>

#include "common/json.hpp"
#include "common/storage_key.hpp"

namespace kv {

Verdict judge(const WriteOp& op, const Held& held) noexcept {
  const bool del = op.kind == WriteOp::Kind::del;
  if (!op.tag) return del && !held.value() ? Verdict::keep : Verdict::apply;
  const Tag& tag = *op.tag;
  if (held.kind == Held::Kind::nothing || tag > held.tag) return Verdict::apply;
  if (tag < held.tag || tag.none()) return Verdict::keep;
  if (del != held.tombstone()) return Verdict::conflict;
  return del ? Verdict::keep : Verdict::compare_values;
}

WriteResult result_of(const WriteOp& op, const Held& before, const Outcome& outcome) {
  WriteResult r;
  if (outcome.verdict == Verdict::conflict) r.status = StoreStatus::conflict;
  else if (outcome.verdict == Verdict::below_floor) r.status = StoreStatus::below_floor;
  else if (op.kind == WriteOp::Kind::del && !before.value()) r.status = StoreStatus::not_found;
  r.held = outcome.now.tag;
  r.applied = outcome.verdict == Verdict::apply;
  r.had_value = (op.tag || op.kind != WriteOp::Kind::put) && before.value();
  r.tombstone = outcome.now.tombstone();
  return r;
}

bool is_drop(WriteOp::Kind kind) noexcept {
  return kind == WriteOp::Kind::drop_value || kind == WriteOp::Kind::drop_tombstone || kind == WriteOp::Kind::purge_tombstone;
}

bool drops(const WriteOp& op, const Held& held) noexcept {
  switch (op.kind) {
    case WriteOp::Kind::drop_value: return held.value();
    case WriteOp::Kind::drop_tombstone: return held.tombstone();
    case WriteOp::Kind::purge_tombstone: return held.tombstone() && op.tag && held.tag == *op.tag;
    default: return false;
  }
}

WriteOp op_of(const Record& r, std::uint64_t floors_seen) {
  return {r.tombstone ? WriteOp::Kind::del : WriteOp::Kind::put, std::string(r.key), std::string(r.value), r.tag,
          floors_seen != 0, floors_seen};
}

void report_conflict(std::string_view stored_key, const Tag& tag) {
  // One write(2): lines from concurrent writers never interleave.
  std::string line = "kvnode: version conflict: key ";
  line.append(stored_key.size() >= kStorageKeyPrefix ? json_quote(user_key(stored_key)) : json_quote(stored_key))
      .append(": version ")
      .append(format_tag(tag))
      .append(" already holds another value; the write was refused\n");
  [[maybe_unused]] const auto w = ::write(2, line.data(), line.size());
}

}  // namespace kv
