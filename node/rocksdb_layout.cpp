// Opening a data directory: its layout checked, upgraded when it predates per-key versions, and the
// state kept in memory (the counter reservation, the tombstone filter) read back.
#include "node/rocksdb_layout.hpp"

#include <rocksdb/iterator.h>
#include <rocksdb/write_batch.h>

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "node/store.hpp"

namespace kv::rocks {
namespace {

// A directory without the format marker: new, or written before versions (values raw in the
// default family, tombstones "" in theirs, no tags), or such a one whose upgrade was cut short.
// Every value is rewritten with the header of Tag{}, the oldest tag, which every tagged write
// beats and which a plain copy meets as "held" (put-if-absent, as before); every tombstone gets
// Tag{} too; a key with both a value and a tombstone (a put after a rebalance's delete) keeps the
// value, which came later. Cut short, it runs again and does only what is left:
//  - values, in key order, a batch at a time, each batch with the last key it rewrote (meta
//    "upgrading"), atomically: a raw value cannot be told from a rewritten one by its bytes, so
//    the mark says which are done;
//  - tombstones: an old one is empty, a rewritten one has a tag's 16 bytes;
//  - last, in one synced batch: the marker, the reservation R = 1 (every counter stored is 0),
//    and the mark removed. Nothing else writes until the store is open.
void upgrade_layout(const std::string& dir, const Families& f, const rocksdb::WriteOptions& write) {
  auto check = [&](const rocksdb::Status& s) {
    if (!s.ok()) throw StoreError("cannot upgrade " + dir + " to per-key versions: " + s.ToString());
  };
  std::string done;  // the last key rewritten; empty: none
  if (auto s = f.db->Get(rocksdb::ReadOptions(), f.meta, slice(kUpgradeKey), &done); !s.IsNotFound()) check(s);
  const Header header(Tag{});
  for (;;) {
    // A fresh iterator per batch: a long-lived one would pin every file the rewrite replaces.
    rocksdb::WriteBatch wb;
    std::unique_ptr<rocksdb::Iterator> it(f.db->NewIterator(rocksdb::ReadOptions(), f.data));
    if (done.empty()) {
      it->SeekToFirst();
    } else {
      it->Seek(done);
      if (it->Valid() && it->key() == slice(done)) it->Next();
    }
    for (; it->Valid() && wb.Count() < kBatchKeys; it->Next()) {
      const rocksdb::Slice key = it->key();
      const rocksdb::Slice parts[] = {header.slice(), it->value()};
      check(wb.Put(f.data, rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2)));
      done.assign(key.data(), key.size());
    }
    check(it->status());
    if (wb.Count() == 0) break;
    wb.Put(f.meta, slice(kUpgradeKey), done);
    check(f.db->Write(write, &wb));
  }
  rocksdb::WriteBatch wb;
  auto has_value = [&](const rocksdb::Slice& key) {
    rocksdb::PinnableSlice ignored;
    const auto s = f.db->Get(rocksdb::ReadOptions(), f.data, key, &ignored);
    if (!s.IsNotFound()) check(s);
    return s.ok();
  };
  const std::string oldest = encode_tombstone(Tag{});
  std::unique_ptr<rocksdb::Iterator> it(f.db->NewIterator(rocksdb::ReadOptions(), f.tombs));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->value().size() == kTagBytes) continue;  // rewritten already
    if (!it->value().empty()) check(bad_record("tombstone", view(it->key())));
    if (has_value(it->key())) wb.Delete(f.tombs, it->key());
    else wb.Put(f.tombs, it->key(), oldest);
    if (wb.Count() >= kBatchKeys) {
      check(f.db->Write(write, &wb));
      wb.Clear();
    }
  }
  check(it->status());
  wb.Put(f.meta, slice(kFormatKey), slice(kFormatVersion));
  wb.Put(f.meta, slice(kReserveKey), be64_key(1));
  wb.Delete(f.meta, slice(kUpgradeKey));
  rocksdb::WriteOptions durable;
  durable.sync = true;
  check(f.db->Write(durable, &wb));
}

}  // namespace

void refuse_unknown_layout(const std::string& dir, const rocksdb::DBOptions& options) {
  if (::access((dir + "/CURRENT").c_str(), F_OK) != 0) return;  // new (else RocksDB logs an error), or Open says why
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(options, dir, &names).ok()) return;
  if (std::find(names.begin(), names.end(), "versions") != names.end())
    throw StoreError("cannot open RocksDB at " + dir +
                     ": it has a \"versions\" column family, the layout of an unreleased build (tags apart from "
                     "values), which this build does not read; copy its keys to a node with ring-rebalance, or start "
                     "from an empty directory");
}

std::uint64_t open_layout(const std::string& dir, const Families& f, const rocksdb::WriteOptions& write) {
  auto fail = [&](const std::string& why) { throw StoreError("cannot open RocksDB at " + dir + ": " + why); };
  std::string format;
  auto s = f.db->Get(rocksdb::ReadOptions(), f.meta, slice(kFormatKey), &format);
  if (s.IsNotFound()) {
    upgrade_layout(dir, f, write);
    s = f.db->Get(rocksdb::ReadOptions(), f.meta, slice(kFormatKey), &format);
  }
  if (!s.ok()) fail(s.ToString());
  if (format != kFormatVersion) fail("storage format \"" + format + "\" is not one this build knows (a newer build wrote it?)");
  std::string reserved;
  s = f.db->Get(rocksdb::ReadOptions(), f.meta, slice(kReserveKey), &reserved);
  if (!s.ok() || reserved.size() != 8) fail("no valid counter reservation: " + (s.ok() ? "malformed" : s.ToString()));
  const std::uint64_t r = read_be64(reserved);
  if (r == 0) fail("no valid counter reservation: 0");
  return r;
}

void load_tombstones(const Families& f, TombstoneFilter& filter) {
  std::unique_ptr<rocksdb::Iterator> it(f.db->NewIterator(rocksdb::ReadOptions(), f.tombs));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() < kStorageKeyPrefix) throw StoreError("malformed stored key in tombstones: " + hex_bytes(view(it->key())));
    filter.add(view(it->key()));
  }
  if (!it->status().ok()) throw StoreError("cannot read tombstones: " + it->status().ToString());
}

}  // namespace kv::rocks
