#include "node/rocksdb_scan.hpp"

#include <algorithm>
#include <limits>

#include "common/transfer.hpp"

namespace kv::rocks {
namespace {

bool batch_full(const ScanBatch& out, std::size_t limit, std::size_t max_bytes) {
  return out.count == limit || (out.count > 0 && out.records.size() >= max_bytes);
}

}  // namespace

RangeIterator::RangeIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::span<const HashRange> ranges,
                             const rocksdb::Snapshot* snapshot) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::uint64_t last = 0;
  for (const auto& r : ranges) last = std::max(last, r.hi);
  if (last < std::numeric_limits<std::uint64_t>::max()) {
    bound_key_ = be64_key(last + 1);
    bound_ = rocksdb::Slice(bound_key_);
    ro.iterate_upper_bound = &bound_;
  }
  it_.reset(db->NewIterator(ro, cf));
}

bool RangeIterator::start(const HashRange& r, std::string_view after) {
  const bool resume = !after.empty() && read_be64(after) >= r.lo;
  const std::string target = resume ? std::string(after) : be64_key(r.lo);
  // The iterator stands on the first key after the Seek's target that was not visited since. When
  // every visited key lies below `target` (visited_hi_ below its hash), no key lies between `target`
  // and where the iterator stands, if that is at or past `target`: a Seek would go there too. At the
  // end of the bound (without an error) no key is left at all.
  const bool in_place = placed_ && visited_hi_ < read_be64(target) && it_->status().ok() &&
                        (!it_->Valid() || view(it_->key()) >= std::string_view(target));
  if (in_place) {
    visited_hi_ = std::max(visited_hi_, r.hi);
  } else {
    it_->Seek(slice(target));
    placed_ = true;
    visited_hi_ = r.hi;
  }
  if (resume && it_->Valid() && it_->key() == slice(after)) it_->Next();
  return in_range(*it_, r);
}

rocksdb::Status scan_values(const Families& f, std::span<const HashRange> ranges, std::string_view after,
                            std::size_t limit, std::size_t max_bytes, ScanBatch& out) {
  RangeIterator ri(f.db, f.data, ranges);
  auto& it = ri.it();
  for (const auto& r : ranges) {
    for (ri.start(r, after); in_range(it, r); it.Next()) {
      if (batch_full(out, limit, max_bytes)) return rocksdb::Status::OK();
      Tag tag;
      std::string_view value;
      if (!decode_value(view(it.value()), tag, value)) return bad_record("value", view(it.key()));
      append_record(out.records, view(it.key()), value);
      out.last_key.assign(it.key().data(), it.key().size());
      ++out.count;
    }
    if (!it.status().ok()) return it.status();
  }
  out.done = true;
  return rocksdb::Status::OK();
}

// An iterator over each family, on one snapshot, merged in key order. A key is in one of them only
// (a value record would win).
rocksdb::Status scan_versioned(const Families& f, std::span<const HashRange> ranges, std::string_view after,
                               std::size_t limit, std::size_t max_bytes, ScanBatch& out) {
  rocksdb::ManagedSnapshot snapshot(f.db);
  RangeIterator vri(f.db, f.data, ranges, snapshot.snapshot()), tri(f.db, f.tombs, ranges, snapshot.snapshot());
  auto &values = vri.it(), &tombs = tri.it();
  for (const auto& r : ranges) {
    vri.start(r, after);
    tri.start(r, after);
    for (;;) {
      const bool v = in_range(values, r), t = in_range(tombs, r);
      if (!v && !t) break;
      if (batch_full(out, limit, max_bytes)) return rocksdb::Status::OK();
      const int order = !v ? 1 : !t ? -1 : values.key().compare(tombs.key());
      auto& it = order <= 0 ? values : tombs;
      const auto key = it.key();
      Record rec{view(key), {}};
      if (order <= 0) {
        if (!decode_value(view(values.value()), rec.tag, rec.value)) return bad_record("value", view(key));
      } else {
        rec.tombstone = true;
        if (!decode_tombstone(view(tombs.value()), rec.tag)) return bad_record("tombstone", view(key));
      }
      append_versioned_record(out.records, rec);
      out.last_key.assign(key.data(), key.size());
      ++out.count;
      if (order == 0) tombs.Next();
      it.Next();
    }
    if (!values.status().ok()) return values.status();
    if (!tombs.status().ok()) return tombs.status();
  }
  out.done = true;
  return rocksdb::Status::OK();
}

}  // namespace kv::rocks
