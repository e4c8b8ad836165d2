// The durable engine: RocksDB, with the layout of node/rocksdb_layout.hpp (a value and its tag in one
// record of the default family; tombstones in a family of their own; meta records).
// No key ever has both a value and a tombstone record: every write that stores one deletes the other
// in the same batch (see stage_write). What a key holds is its value record, else its tombstone
// record, else nothing: the plain read path is one Get on default, and a versioned read looks at
// tombstones only when there is no value.
//
// An untagged put, the common write (plain clients; kvproxy outside ring changes), is one blind Put
// of one record: no read, no second insert. Two things make that possible:
//  - its tag comes from a node-wide counter kept above every counter stored (NodeTags,
//    node/versions.hpp; durable through restarts by the reservation, see commit()), so it is newer
//    than whatever the key holds without reading it;
//  - a put over a tombstone must still delete the tombstone record. The ways to do that: (a) a
//    Delete on tombstones in every put's batch: a second insert per put, the cost this layout is
//    here to remove; (b) tombstones kept as records of the default family that a put overwrites:
//    one insert, but then ring-rebalance's purge of tombstones and the count of them walk every
//    value, the count drifts each time a put replaces a tombstone it did not read, and setting it
//    right takes a scan of the whole store at open; (c), this one: tombstones stay in their own
//    (small) family, and a TombstoneFilter in memory counts the tombstone records per bucket of
//    ring hashes, exactly, since every tombstone record is added or removed by a write that read
//    what its key holds. A put whose bucket counts none is blind (one Put); one whose bucket counts
//    some reads first (a Get on tombstones) and deletes the tombstone it finds. With no tombstones
//    every put is blind; with T of them about 1 - e^(-T/2^20) of puts read. The filter is rebuilt
//    at open by one pass over tombstones, and its total is the exact count of tombstones held.
// Tagged writes, ingested records, deletes and drops read what the key holds first (its value, then
// its tombstone if the filter says it may have one), as the rule of node/versions.hpp needs.
// Writes of one key are made atomic against each other by a lock stripe, or with --sync by the group
// committer (node/group_commit.hpp), whose thread is then the only writer. Everything one write (or
// one group commit) changes goes in one WriteBatch. The first storage error stops writes.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/storage_key.hpp"
#include "node/group_commit.hpp"
#include "node/rocksdb_layout.hpp"
#include "node/rocksdb_options.hpp"
#include "node/rocksdb_scan.hpp"
#include "node/store.hpp"
#include "node/tombstone_filter.hpp"
#include "node/versions.hpp"

namespace kv {
namespace {

using namespace rocks;  // the engine's private parts: node/rocksdb_*.hpp

class RocksStore final : public Store {
 public:
  explicit RocksStore(const RocksOptions& o) {
    const rocksdb::Options opts = rocksdb_options(o, gate_);
    refuse_unknown_layout(o.dir, rocksdb::DBOptions(opts));
    // The meta family also keeps builds from before versions out: they do not open it, so RocksDB
    // refuses them this directory rather than let them serve values with their headers.
    const std::vector<rocksdb::ColumnFamilyDescriptor> descriptors{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts)},
        {"tombstones", rocksdb::ColumnFamilyOptions(opts)},
        {"meta", rocksdb::ColumnFamilyOptions(opts)}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    const auto s = rocksdb::DB::Open(rocksdb::DBOptions(opts), o.dir, descriptors, &handles, &db);
    if (!s.ok()) throw StoreError("cannot open RocksDB at " + o.dir + ": " + s.ToString());
    db_.reset(db);
    data_ = handles[0];
    tombs_ = handles[1];
    meta_ = handles[2];
    // The WAL is written (to the OS) before Put returns, so an acknowledged write survives kill -9.
    // With sync, it is also fsynced before the write is acknowledged; then every write goes through
    // the group committer, which shares one fsync among all writes queued while the last one ran.
    write_.sync = o.sync;
    try {
      const std::uint64_t r = open_layout(o.dir, families(), write_);
      // Every counter on disk is below r (commit()'s invariant): untagged writes start there.
      reserved_.store(r);
      tags_.saw(r - 1);
      load_tombstones(families(), tombstones_);
    } catch (...) {
      close();
      throw;
    }
    if (o.sync)
      committer_.emplace([this](std::span<const WriteOp* const> ops, std::span<WriteResult> results) { apply(ops, results); });
  }

  ~RocksStore() override {
    committer_.reset();  // first: its last batches still write to db_
    close();
  }

  StoreStatus get(std::string_view key, std::string& value, std::string& err) override {
    // Into `value`, then the header off in place: no copy beyond RocksDB's own.
    const auto s = db_->Get(rocksdb::ReadOptions(), data_, slice(key), &value);
    if (s.ok()) {
      if (value.size() >= kHeaderBytes && value[0] == kValueFormat) {
        value.erase(0, kHeaderBytes);
        return StoreStatus::ok;
      }
      err = bad_record("value", key).ToString();
      return StoreStatus::error;
    }
    if (s.IsNotFound()) return StoreStatus::not_found;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus get_versioned(std::string_view key, std::string& value, Tag& tag, bool& tombstone,
                            std::string& err) override {
    tombstone = false;
    tag = {};
    auto s = db_->Get(rocksdb::ReadOptions(), data_, slice(key), &value);
    if (s.ok()) {
      std::string_view bytes;
      if (!decode_value(value, tag, bytes)) {
        err = bad_record("value", key).ToString();
        return StoreStatus::error;
      }
      value.erase(0, kHeaderBytes);
      return StoreStatus::ok;  // a value record is what the key holds
    }
    if (!s.IsNotFound()) {
      err = s.ToString();
      return StoreStatus::error;
    }
    // No value: read both families again at one point in time (one MultiGet; no explicit snapshot,
    // which would take the database's mutex), since a write may have come since the first read: a
    // put that deleted the tombstone, say, must not make the key look as if it held nothing.
    rocksdb::ColumnFamilyHandle* families[] = {data_, tombs_};
    const rocksdb::Slice keys[] = {slice(key), slice(key)};
    rocksdb::PinnableSlice found[2];
    rocksdb::Status statuses[2];
    db_->MultiGet(rocksdb::ReadOptions(), 2, families, keys, found, statuses);
    Held held;
    std::string_view bytes;
    s = held_from(statuses[0], view(found[0]), statuses[1], view(found[1]), key, held, bytes);
    if (!s.ok()) {
      err = s.ToString();
      return StoreStatus::error;
    }
    tag = held.tag;
    tombstone = held.tombstone();
    if (!held.value()) return StoreStatus::not_found;
    value.assign(bytes);
    return StoreStatus::ok;
  }

  WriteResult write(WriteOp op) override {
    if (committer_) return committer_->submit_and_wait(std::move(op));
    // The stripe makes the read of what the key holds (when there is one) and the write one step
    // against other writes of the key (a rebalancer's ingest or drop of it included).
    std::lock_guard lock(stripe(op.key));
    return apply_one(op);
  }

  std::string meta(std::string_view key) override {
    std::string value;
    const auto s = db_->Get(rocksdb::ReadOptions(), meta_, slice(key), &value);
    if (s.IsNotFound()) return {};
    if (!s.ok()) throw StoreError("reading " + std::string(key) + ": " + s.ToString());
    return value;
  }

  void set_meta(std::string_view key, std::string_view value) override {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    if (const auto s = db_->Put(sync, meta_, slice(key), slice(value)); !s.ok())
      throw StoreError("writing " + std::string(key) + ": " + s.ToString());
  }

  void settle() override {
    // A write stores and tells the observer in one step: under its stripe, or on the committer
    // thread, which runs one op after everything queued before it.
    if (committer_) {
      committer_->submit_and_wait({WriteOp::Kind::purge_tombstone, std::string(kStorageKeyPrefix, '\0'), {}});
      return;
    }
    for (auto& s : stripes_) std::lock_guard lock(s);
  }

  void set_metas(std::span<const std::pair<std::string, std::string>> records) override {
    rocksdb::WriteBatch wb;
    for (const auto& [k, v] : records) wb.Put(meta_, slice(k), slice(v));
    rocksdb::WriteOptions sync;
    sync.sync = true;
    if (const auto s = db_->Write(sync, &wb); !s.ok()) throw StoreError("writing " + std::to_string(records.size()) + " meta records: " + s.ToString());
  }

  std::vector<std::pair<std::string, std::string>> metas(std::string_view prefix) override {
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->Seek(slice(prefix)); it->Valid() && view(it->key()).starts_with(prefix); it->Next())
      out.emplace_back(std::string(view(it->key())), std::string(view(it->value())));
    if (!it->status().ok()) throw StoreError("reading meta records: " + it->status().ToString());
    return out;
  }

  StoreStatus tombstones(std::span<const HashRange> ranges, std::size_t limit, std::vector<std::pair<std::string, Tag>>& out,
                         std::string& err) override {
    const bool ok = for_each_in_ranges(db_.get(), tombs_, ranges, err, [&](const rocksdb::Iterator& it) {
      if (limit && out.size() == limit) return false;
      Tag tag;
      if (!decode_tombstone(view(it.value()), tag)) {
        err = bad_record("tombstone", view(it.key())).ToString();
        return false;
      }
      out.emplace_back(std::string(view(it.key())), tag);
      return true;
    });
    return ok ? StoreStatus::ok : StoreStatus::error;
  }

  StoreStatus purge_tombstones(std::span<const std::pair<std::string, Tag>> tombstones, std::size_t& purged,
                               std::string& err) override {
    purged = 0;
    std::vector<WriteOp> batch;
    auto flush = [&] {
      std::vector<WriteResult> results;
      if (!drop_batch(batch, err, &results)) return false;
      for (const auto& r : results) purged += r.applied ? 1 : 0;
      return true;
    };
    for (const auto& [key, tag] : tombstones) {
      batch.push_back({WriteOp::Kind::purge_tombstone, key, {}, tag});
      if (batch.size() >= kBatchKeys && !flush()) return StoreStatus::error;
    }
    return flush() ? StoreStatus::ok : StoreStatus::error;
  }

  std::uint64_t key_count() override { return estimate(data_); }
  std::uint64_t tombstone_count() override { return tombstones_.total(); }

  std::string_view engine() const noexcept override { return "rocksdb"; }

  void flush() override {
    if (!gate_.stopped()) db_->FlushWAL(true);
  }
  std::string write_error() const override { return gate_.stopped() ? gate_.why() : std::string(); }

  bool group_commit() const noexcept override { return committer_.has_value(); }
  std::uint64_t commits() const noexcept override { return committer_ ? committer_->commits() : 0; }

  void submit(WriteOp op, std::function<void(WriteResult)> done) override {
    if (!committer_) return Store::submit(std::move(op), std::move(done));
    committer_->submit(std::move(op), std::move(done));
  }

  StoreStatus scan(std::span<const HashRange> ranges, std::string_view after, std::size_t limit, std::size_t max_bytes,
                   bool versioned, ScanBatch& out, std::string& err) override {
    const auto s = versioned ? scan_versioned(families(), ranges, after, limit, max_bytes, out)
                             : scan_values(families(), ranges, after, limit, max_bytes, out);
    if (s.ok()) return StoreStatus::ok;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus measure(std::span<const HashRange> ranges, Size& out, std::string& err) override {
    out = {};
    const bool ok = for_each_in_ranges(db_.get(), data_, ranges, err, [&](const rocksdb::Iterator& it) {
      ++out.keys;
      out.bytes += it.key().size() + it.value().size();
      return true;
    });
    return ok ? StoreStatus::ok : StoreStatus::error;
  }

  StoreStatus ingest_records(std::span<const Record> records, std::uint64_t floors_seen, std::size_t& written,
                             std::size_t& conflicts, std::string& err) override {
    written = conflicts = 0;
    auto tally = [&](WriteResult r) {
      if (r.status == StoreStatus::error) {
        err = std::move(r.err);
        return false;
      }
      written += r.applied ? 1 : 0;
      conflicts += r.status == StoreStatus::conflict ? 1 : 0;
      return true;
    };
    if (committer_) {
      // Through the committer, the only writer: the whole batch usually shares one fsync.
      std::vector<WriteOp> ops;
      ops.reserve(records.size());
      for (const auto& r : records) ops.push_back(op_of(r, floors_seen));
      for (auto& r : committer_->submit_all_and_wait(std::move(ops)))
        if (!tally(std::move(r))) return StoreStatus::error;
      return StoreStatus::ok;
    }
    // In chunks, each one WriteBatch under the stripes of its keys (taken in order: no deadlock).
    // One write per key cost anti-entropy's pull about 9.5 us of CPU per key on the rebuilding node,
    // 3.9 us in chunks (bench/RESULTS.md, "The pull's CPU per key"); a chunk holds its stripes for
    // well under a millisecond.
    // A chunk takes at most half the stripes: the rest stay free for client writes, and a thread
    // holds few enough locks for ThreadSanitizer's deadlock detector (64 at most, commit's included).
    std::vector<WriteOp> ops;
    std::vector<const WriteOp*> pointers;
    std::vector<WriteResult> results;
    for (std::size_t from = 0; from < records.size();) {
      ops.clear();
      pointers.clear();
      std::uint64_t mask = 0;
      for (; from < records.size() && ops.size() < kIngestChunk; ++from) {
        const std::uint64_t bit = std::uint64_t{1} << stripe_index(records[from].key);
        if (!(mask & bit) && std::popcount(mask) == kIngestStripes) break;
        ops.push_back(op_of(records[from], floors_seen));
        mask |= bit;
      }
      for (const auto& op : ops) pointers.push_back(&op);
      results.assign(ops.size(), WriteResult{});
      {
        const auto locks = lock_stripes(mask);
        apply(pointers, results);
      }
      for (auto& r : results)
        if (!tally(std::move(r))) return StoreStatus::error;
    }
    return StoreStatus::ok;
  }

  StoreStatus drop(std::span<const HashRange> ranges, bool data, bool tombstones, std::string& err) override {
    // Point deletes of the keys found, not DeleteRange: a rebalance drops tens of thousands of
    // small ranges, and as many range tombstones would slow every later read. The scan only finds
    // candidates; each is deleted by a drop op, which checks under the key's atomic step that the
    // key still holds what was found (a client may have written it since).
    std::vector<WriteOp> batch;
    for (const auto& [cf, kind] : {std::pair{data ? data_ : nullptr, WriteOp::Kind::drop_value},
                                  std::pair{tombstones ? tombs_ : nullptr, WriteOp::Kind::drop_tombstone}}) {
      if (!cf) continue;
      const bool ok = for_each_in_ranges(db_.get(), cf, ranges, err, [&](const rocksdb::Iterator& it) {
        batch.push_back({kind, std::string(view(it.key())), {}});
        return batch.size() < kBatchKeys || drop_batch(batch, err);
      });
      if (!ok) return StoreStatus::error;
    }
    return drop_batch(batch, err) ? StoreStatus::ok : StoreStatus::error;
  }

 private:
  Families families() const { return {db_.get(), data_, tombs_, meta_}; }

  void close() {
    if (!db_) return;
    if (!gate_.stopped()) db_->FlushWAL(true);
    for (auto* cf : {data_, tombs_, meta_}) db_->DestroyColumnFamilyHandle(cf);
    db_->Close();
    db_.reset();
  }

  // ---- reading what a key holds ----

  // `held` (and the value's bytes, a view into `value_record`) from reads of both families at one
  // point in time. A value record is what the key holds; else its tombstone record; else nothing.
  static rocksdb::Status held_from(const rocksdb::Status& vs, std::string_view value_record, const rocksdb::Status& ts,
                                   std::string_view tombstone_record, std::string_view key, Held& held,
                                   std::string_view& value) {
    held = {};
    if (vs.ok()) {
      held.kind = Held::Kind::value;
      return decode_value(value_record, held.tag, value) ? vs : bad_record("value", key);
    }
    if (!vs.IsNotFound()) return vs;
    if (ts.IsNotFound()) return rocksdb::Status::OK();
    if (!ts.ok()) return ts;
    held.kind = Held::Kind::tombstone;
    return decode_tombstone(tombstone_record, held.tag) ? ts : bad_record("tombstone", key);
  }

  // In the key's atomic step (no write of it can come between the two reads).
  rocksdb::Status read_held(std::string_view key, Held& held) {
    rocksdb::PinnableSlice value, tombstone;
    const auto vs = db_->Get(rocksdb::ReadOptions(), data_, slice(key), &value);
    auto ts = rocksdb::Status::NotFound();
    if (vs.IsNotFound() && tombstones_.may_hold(key)) ts = db_->Get(rocksdb::ReadOptions(), tombs_, slice(key), &tombstone);
    std::string_view ignored;
    return held_from(vs, view(value), ts, view(tombstone), key, held, ignored);
  }

  // ---- writes ----

  // Stripe-locked (or committer-thread) form of one write.
  WriteResult apply_one(const WriteOp& op) {
    WriteResult r;
    const WriteOp* ops[] = {&op};
    apply(ops, {&r, 1});
    return r;
  }

  // The write ops of `batch` through the key's atomic step: the committer, or every stripe at once
  // (a batch holds keys of any stripe; up to kBatchKeys of them hold the stripes for a few ms).
  bool drop_batch(std::vector<WriteOp>& batch, std::string& err, std::vector<WriteResult>* kept = nullptr) {
    if (batch.empty()) return true;
    std::vector<WriteResult> results;
    if (committer_) {
      results = committer_->submit_all_and_wait(std::move(batch));
    } else {
      results.resize(batch.size());
      std::vector<const WriteOp*> ops;
      for (const auto& op : batch) ops.push_back(&op);
      const auto locks = lock_stripes(~std::uint64_t{0});
      apply(ops, results);
    }
    batch.clear();
    for (auto& r : results) {
      if (r.status == StoreStatus::error) {
        err = std::move(r.err);
        return false;
      }
    }
    if (kept) *kept = std::move(results);
    return true;
  }

  // What an earlier op of the same batch left of a key (applying the batch's ops one at a time).
  struct Staged {
    Held held;
    std::string_view value;  // into the op that stored it; valid while the batch is applied
  };

  // Applies `ops` in order as one WriteBatch (one write, one fsync with sync), each op seeing the
  // ops before it (what they stored, and the tags they stored). The caller makes this atomic against
  // other writers of the same keys: a stripe lock, or with sync the group committer, whose thread is
  // then the only writer.
  void apply(std::span<const WriteOp* const> ops, std::span<WriteResult> results) {
    // One op (the usual): room for its record up front, as DB::Put does.
    rocksdb::WriteBatch wb(ops.size() == 1 ? ops[0]->key.size() + ops[0]->value.size() + kHeaderBytes + 64 : 0);
    const bool many = ops.size() > 1;
    std::unordered_map<std::string_view, Staged> staged;  // only with more than one op
    std::uint64_t top = 0;                                // the greatest counter the batch stores
    struct Change {
      std::string_view key;
      Held before, now;
    };
    std::vector<Change> changes;  // for the observer, told once the batch is durable
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const WriteOp& op = *ops[i];
      const Staged* earlier = nullptr;
      if (many)
        if (const auto it = staged.find(op.key); it != staged.end()) earlier = &it->second;
      // An untagged put over a key without a tombstone: a blind write of one record (its tag is
      // newer than anything held: NodeTags' invariant).
      if (op.kind == WriteOp::Kind::put && !op.tag && !observed() &&
          !(earlier ? earlier->held.tombstone() : tombstones_.may_hold(op.key))) {
        const Outcome o = untagged_put(tags_);
        results[i] = result_of(op, {}, o);
        stage_value(wb, op.key, o.now.tag, op.value);
        top = std::max(top, o.now.tag.counter);
        if (many) staged[op.key] = {o.now, op.value};
        continue;
      }
      Held before;
      if (earlier) {
        before = earlier->held;
      } else if (auto s = read_held(op.key, before); !s.ok()) {
        results[i] = {StoreStatus::error, s.ToString()};
        continue;
      }
      if (is_drop(op.kind)) {
        results[i].applied = drops(op, before);
        if (!results[i].applied) continue;
        stage_drop(wb, op.key, before);
        if (observed()) changes.push_back({op.key, before, {}});
        if (many) staged[op.key] = {};
        continue;
      }
      rocksdb::Status read;  // of the held value, read only to settle two writes with one tag
      const Outcome o = decide(op, before, tags_, floor_verdict(op, before), [&] {
        if (earlier) return earlier->value == op.value;
        rocksdb::PinnableSlice record;
        read = db_->Get(rocksdb::ReadOptions(), data_, slice(op.key), &record);
        Tag ignored;
        std::string_view held_value;
        if (read.IsNotFound() || (read.ok() && !decode_value(view(record), ignored, held_value))) read = bad_record("value", op.key);
        return read.ok() && held_value == op.value;
      });
      if (!read.ok()) {
        results[i] = {StoreStatus::error, read.ToString()};
        continue;
      }
      results[i] = result_of(op, before, o);
      if (o.verdict == Verdict::conflict) report_conflict(op.key, *op.tag);
      if (o.verdict != Verdict::apply) continue;
      stage_write(wb, op, before, o.now);
      if (observed()) changes.push_back({op.key, before, o.now});
      top = std::max(top, o.now.tag.counter);
      if (many) staged[op.key] = {o.now, op.value};
    }
    if (wb.Count() == 0) return;
    if (auto failed = commit(wb, top)) {
      for (std::size_t i = 0; i < ops.size(); ++i)
        if (results[i].status != StoreStatus::error) results[i] = {StoreStatus::error, *failed};
      return;
    }
    for (const auto& c : changes) notify(c.key, c.before, c.now);
  }

  // A value record: the header, then the value's bytes, put together by RocksDB in its batch.
  void stage_value(rocksdb::WriteBatch& wb, std::string_view key, const Tag& tag, std::string_view value) {
    const Header header(tag);
    const rocksdb::Slice k = slice(key);
    const rocksdb::Slice parts[] = {header.slice(), slice(value)};
    wb.Put(data_, rocksdb::SliceParts(&k, 1), rocksdb::SliceParts(parts, 2));
  }

  // An applied put or delete that read what the key held: its record, and the other kind's deleted,
  // so that a key never has both; the filter follows the tombstones.
  void stage_write(rocksdb::WriteBatch& wb, const WriteOp& op, const Held& before, const Held& now) {
    const auto k = slice(op.key);
    if (now.value()) {
      stage_value(wb, op.key, now.tag, op.value);
      if (before.tombstone()) {
        wb.Delete(tombs_, k);
        tombstones_.remove(op.key);
      }
    } else {
      if (before.value()) wb.Delete(data_, k);
      wb.Put(tombs_, k, encode_tombstone(now.tag));
      if (!before.tombstone()) tombstones_.add(op.key);
    }
  }

  // A key dropped: it then holds nothing, not even a tag.
  void stage_drop(rocksdb::WriteBatch& wb, std::string_view key, const Held& before) {
    if (before.value()) {
      wb.Delete(data_, slice(key));
    } else {
      wb.Delete(tombs_, slice(key));
      tombstones_.remove(key);
    }
  }

  // Writes a batch whose greatest stored counter is `top`, with the reservation in it when `top`
  // reaches the counters reserved. Returns the error, if any.
  //
  // The invariant (I): every counter in a record that survives a crash is below R, the reservation
  // that survives with it (meta "reserved"). Then at open next = R is above every counter stored,
  // which is NodeTags' invariant, and during the run every stored counter goes through NodeTags
  // (take/saw) before its write, inside its key's atomic step.
  // Proof of (I). `reserved_` is the greatest R written by a batch that has returned from Write,
  // and only grows (each new R is written under reserve_mutex_, after the last one returned, so
  // they reach the WAL in increasing order). Take a batch B, greatest counter `top`:
  //  - top < reserved_ as B loads it: the batch that wrote that reservation had returned from Write
  //    before B's Write began, so it precedes B in the WAL. Recovery restores a prefix of the WAL
  //    (RocksDB's point-in-time recovery; and before a flush moves a family's records into a table
  //    file, the WALs they came from are synced when the store has several families), so if B
  //    survives, so does that R or a greater one: B's counters are below the R that survives.
  //  - otherwise B carries R' = top + 1 + kReserveStep itself (unless another batch raised
  //    reserved_ past top meanwhile: then the case above), in the same WriteBatch, atomic with B's
  //    records: they survive together, or neither does.
  // An upgrade and a new directory write R = 1 with the format marker (every counter there is 0).
  // No clock, and no read per write: one reservation write per kReserveStep counters. A tagged
  // write or ingested record with a greater counter goes through the same path (`top` counts it).
  std::optional<std::string> commit(rocksdb::WriteBatch& wb, std::uint64_t top) {
    auto write = [&] { return db_->Write(write_, &wb); };
    if (top < reserved_.load(std::memory_order_acquire)) return gated(write);
    std::lock_guard lock(reserve_mutex_);
    if (top < reserved_.load(std::memory_order_relaxed)) return gated(write);
    const std::uint64_t r = top + 1 + kReserveStep;
    wb.Put(meta_, slice(kReserveKey), be64_key(r));
    auto failed = gated(write);
    if (!failed) reserved_.store(r, std::memory_order_release);
    return failed;
  }

  // ---- the rest ----

  // Every write goes through here: refused with the reason once writes are stopped, and a failure
  // of its own stops them. Returns the error, if any.
  template <class Write>
  std::optional<std::string> gated(Write&& write) {
    if (gate_.stopped()) return gate_.why();
    const rocksdb::Status s = write();
    if (s.ok()) return std::nullopt;
    gate_.stop(s.ToString());
    return s.ToString();
  }

  EngineStats engine_stats() override {
    using P = rocksdb::DB::Properties;
    EngineStats s;
    const auto all = [this](const std::string& name) {  // summed over the column families
      std::uint64_t v = 0;
      db_->GetAggregatedIntProperty(name, &v);
      return v;
    };
    const auto db = [this](const std::string& name) {  // the database's, or the shared cache's
      std::uint64_t v = 0;
      db_->GetIntProperty(name, &v);
      return v;
    };
    s.sst_bytes = all(P::kTotalSstFilesSize);
    s.memtable_bytes = all(P::kCurSizeAllMemTables);
    s.pending_compaction_bytes = all(P::kEstimatePendingCompactionBytes);
    s.running_compactions = db(P::kNumRunningCompactions);
    s.running_flushes = db(P::kNumRunningFlushes);
    s.block_cache_bytes = db(P::kBlockCacheUsage);
    s.block_cache_capacity = db(P::kBlockCacheCapacity);
    for (auto* cf : {data_, tombs_, meta_}) {
      std::string files;
      if (db_->GetProperty(cf, P::kNumFilesAtLevelPrefix + "0", &files)) s.l0_files += std::strtoull(files.c_str(), nullptr, 10);
    }
    return s;
  }

  std::uint64_t estimate(rocksdb::ColumnFamilyHandle* cf) {
    std::uint64_t n = 0;
    db_->GetIntProperty(cf, "rocksdb.estimate-num-keys", &n);
    return n;
  }

  static constexpr std::size_t kStripes = 64;  // a mask of them fits a std::uint64_t
  static constexpr std::size_t kIngestChunk = 256;
  static constexpr int kIngestStripes = 32;

  // Stored keys begin with their ring hash: its last byte spreads keys evenly over the stripes.
  // (TombstoneFilter's buckets rely on this mapping: bucket b is stripe b % kStripes.)
  static std::size_t stripe_index(std::string_view key) {
    return static_cast<unsigned char>(key[kStorageKeyPrefix - 1]) % kStripes;
  }
  std::mutex& stripe(std::string_view key) { return stripes_[stripe_index(key)]; }
  // The stripes whose bits `mask` sets, taken in order (no deadlock between two such takers).
  std::array<std::unique_lock<std::mutex>, kStripes> lock_stripes(std::uint64_t mask) {
    std::array<std::unique_lock<std::mutex>, kStripes> locks;
    for (std::size_t i = 0; i < kStripes; ++i)
      if (mask >> i & 1) locks[i] = std::unique_lock(stripes_[i]);
    return locks;
  }

  WriteGate gate_;  // before db_: the listener uses it until the database is closed
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* data_ = nullptr;
  rocksdb::ColumnFamilyHandle* tombs_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::WriteOptions write_;
  std::array<std::mutex, kStripes> stripes_;
  NodeTags tags_;                      // the tags of untagged writes; starts at the reservation
  std::atomic<std::uint64_t> reserved_{0};  // the reservation written last (commit())
  std::mutex reserve_mutex_;           // one reservation write at a time
  TombstoneFilter tombstones_;
  // With sync only. Emplaced once everything apply() uses exists; reset before the database closes.
  std::optional<GroupCommitter> committer_;
};

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options) { return std::make_unique<RocksStore>(options); }

}  // namespace kv
