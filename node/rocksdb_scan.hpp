// Walking ring ranges of the RocksDB engine's families: bounded iterators, and the scans that fill a
// ScanBatch (values only, or values and tombstones with their tags). Private to the engine.
#pragma once

#include <rocksdb/iterator.h>
#include <rocksdb/snapshot.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/ring_change.hpp"
#include "node/rocksdb_layout.hpp"
#include "node/store.hpp"

namespace kv::rocks {

// One iterator for all the ranges of a request, positioned range by range. A rebalance sends tens
// of thousands of small ranges (a 3 -> 5 replicas change of the default ring, 186,751 of them), and an
// iterator made and sought per range, on each family, cost more than everything else the node did for
// them. This one is bounded by the end of the last range and seeks only when it must: a range that
// ends before the key the iterator stands on holds nothing, and one that starts before that key, past
// every key visited since the last Seek, starts there without a Seek.
// Deleted keys: a Seek into a stretch of them (a rebalance just dropped them) walks every one up to
// the next live key (measured with an unbounded iterator per range: 1.7 ms per Seek after 25k
// deletes, 43 s for one rebalance's 24k ranges). Here a walk may pass many ranges, but the ranges it
// passes need no Seek of their own, so each deleted key in the request's span is walked at most once.
class RangeIterator {
 public:
  // An iterator over `cf` up to the end of the last of `ranges` (at `snapshot`, or the DB's now).
  RangeIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::span<const HashRange> ranges,
                const rocksdb::Snapshot* snapshot = nullptr);

  // Positions the iterator on the first key of `r`, after the cursor `after` when it lies in `r`;
  // true when there is one (in_range). The caller walks `r` with it().Next(), never past `r`'s end
  // and one key beyond it.
  bool start(const HashRange& r, std::string_view after = {});
  rocksdb::Iterator& it() { return *it_; }

 private:
  std::string bound_key_;
  rocksdb::Slice bound_;
  std::unique_ptr<rocksdb::Iterator> it_;
  // Since its last Seek, the iterator moved only through keys of ranges started since, which all
  // lie at or below visited_hi_: so it stands on the first key after them that is at or after the
  // Seek's target.
  bool placed_ = false;
  std::uint64_t visited_hi_ = 0;
};

// `it` is on a key of `r`.
inline bool in_range(const rocksdb::Iterator& it, const HashRange& r) {
  return it.Valid() && read_be64(view(it.key())) <= r.hi;
}

// Calls visit(it) on each record of `cf` in `ranges`, in key order, while it returns true. False
// when the walk failed, `err` saying why: an iterator's error, or visit's own (visit sets `err` and
// returns false; false with `err` left empty ends the walk early without a failure).
template <class Visit>
bool for_each_in_ranges(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::span<const HashRange> ranges,
                        std::string& err, Visit&& visit) {
  err.clear();
  RangeIterator ri(db, cf, ranges);
  auto& it = ri.it();
  for (const auto& r : ranges) {
    for (ri.start(r); in_range(it, r); it.Next())
      if (!visit(std::as_const(it))) return err.empty();
    if (!it.status().ok()) {
      err = it.status().ToString();
      return false;
    }
  }
  return true;
}

// Values only, from the default family, without their headers, after the cursor `after`, until
// `limit` records or `max_bytes` of them.
rocksdb::Status scan_values(const Families& f, std::span<const HashRange> ranges, std::string_view after,
                            std::size_t limit, std::size_t max_bytes, ScanBatch& out);

// Values and tombstones with their tags, from one snapshot, in key order.
rocksdb::Status scan_versioned(const Families& f, std::span<const HashRange> ranges, std::string_view after,
                               std::size_t limit, std::size_t max_bytes, ScanBatch& out);

}  // namespace kv::rocks
