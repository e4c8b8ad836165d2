#include "node/rocksdb_scan.hpp"

#include <limits>

#include "common/transfer.hpp"

namespace kv::rocks {
namespace {

bool batch_full(const ScanBatch& out, std::size_t limit, std::size_t max_bytes) {
  return out.count == limit || (out.count > 0 && out.records.size() >= max_bytes);
}

}  // namespace

rocksdb::Iterator& RangeIterator::open(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const HashRange& r,
                                       const rocksdb::Snapshot* snapshot) {
  it_.reset();  // before its bound changes
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  if (r.hi < std::numeric_limits<std::uint64_t>::max()) {
    bound_key_ = be64_key(r.hi + 1);
    bound_ = rocksdb::Slice(bound_key_);
    ro.iterate_upper_bound = &bound_;
  }
  it_.reset(db->NewIterator(ro, cf));
  return *it_;
}

void seek_start(rocksdb::Iterator& it, const HashRange& r, std::string_view after) {
  if (!after.empty() && read_be64(after) >= r.lo) {
    it.Seek(slice(after));
    if (it.Valid() && it.key() == slice(after)) it.Next();
  } else {
    it.Seek(be64_key(r.lo));
  }
}

rocksdb::Status scan_values(const Families& f, std::span<const HashRange> ranges, std::string_view after,
                            std::size_t limit, std::size_t max_bytes, ScanBatch& out) {
  RangeIterator ri;
  for (const auto& r : ranges) {
    auto& it = ri.open(f.db, f.data, r);
    for (seek_start(it, r, after); in_range(it, r); it.Next()) {
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
  RangeIterator vri, tri;
  for (const auto& r : ranges) {
    auto& values = vri.open(f.db, f.data, r, snapshot.snapshot());
    auto& tombs = tri.open(f.db, f.tombs, r, snapshot.snapshot());
    seek_start(values, r, after);
    seek_start(tombs, r, after);
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
