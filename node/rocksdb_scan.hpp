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

// An iterator bounded by a range's end. Without the bound, a Seek into a stretch of deleted keys
// (a rebalance just dropped them) walks every tombstone up to the next live key, wherever that is:
// measured, 1.7 ms per Seek after 25k deletes, 43 s for one rebalance's 24k ranges. One object
// serves range after range: open() replaces the iterator.
class RangeIterator {
 public:
  rocksdb::Iterator& open(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const HashRange& r,
                          const rocksdb::Snapshot* snapshot = nullptr);

 private:
  std::string bound_key_;
  rocksdb::Slice bound_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

// Positions `it` at the first key of `r` to scan: after the cursor `after` when it lies in `r`.
void seek_start(rocksdb::Iterator& it, const HashRange& r, std::string_view after);

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
  RangeIterator ri;
  for (const auto& r : ranges) {
    auto& it = ri.open(db, cf, r);
    for (it.Seek(be64_key(r.lo)); in_range(it, r); it.Next())
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
