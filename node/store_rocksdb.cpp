// The durable engine: RocksDB. Three column families:
//   default     stored key -> the value, raw bytes: all the client's plain read path ever reads
//   tombstones  stored key -> "" for each key whose last write was a delete (counted; purged by
//               ring-rebalance)
//   versions    stored key -> [kind 'v' or 't'][tag counter, be64][tag writer, be64] for each key
//               that holds a value or a tombstone (node/versions.hpp orders writes by it), and one
//               marker under kLayoutKey once every key has its entry (see upgrade_layout)
// A write reads the tag held with one Get on versions and stores everything it changes in one
// WriteBatch, so a value and its tag are durable together. Writes of one key are made atomic against
// each other by a lock stripe, or with --sync by the group committer (node/group_commit.hpp), whose
// thread is then the only writer. The first storage error stops writes.
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/storage_key.hpp"
#include "node/group_commit.hpp"
#include "node/store.hpp"
#include "node/versions.hpp"

namespace kv {
namespace {

std::string be64_key(std::uint64_t v) {
  std::string k;
  append_be64(k, v);
  return k;
}

// ---- the versions family's entries ----

constexpr char kValueKind = 'v', kTombstoneKind = 't';
constexpr std::size_t kVersionBytes = 1 + 8 + 8;
// The marker of a versions family in which every value and tombstone has its entry. Shorter than any
// stored key (an 8-byte hash, then the key), so it is never one, and no range scan meets it.
constexpr std::string_view kLayoutKey = "";
constexpr std::string_view kLayoutVersion = "1";

std::string encode_version(const Held& h) {
  std::string out;
  out.reserve(kVersionBytes);
  out.push_back(h.tombstone() ? kTombstoneKind : kValueKind);
  append_be64(out, h.tag.counter);
  append_be64(out, h.tag.writer);
  return out;
}

bool decode_version(std::string_view in, Held& out) {
  if (in.size() != kVersionBytes || (in[0] != kValueKind && in[0] != kTombstoneKind)) return false;
  out.kind = in[0] == kValueKind ? Held::Kind::value : Held::Kind::tombstone;
  out.tag = {read_be64(in.substr(1)), read_be64(in.substr(9))};
  return true;
}

rocksdb::Status bad_version(std::string_view key) {
  return rocksdb::Status::Corruption("malformed version entry for stored key " + hex_bytes(key));
}
rocksdb::Status missing_value(std::string_view key) {
  return rocksdb::Status::Corruption("a version entry says stored key " + hex_bytes(key) + " holds a value, but none is stored");
}

// After a failed write (a full or read-only disk), RocksDB must not be written to again: the write-
// ahead log writer keeps the error, and Debian's build asserts (aborts) on the next write to it. So
// the first error, in a write or in a background flush or compaction, stops writes; reads go on.
class WriteGate {
 public:
  bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }
  void stop(const std::string& reason) {
    std::lock_guard lock(mutex_);
    if (stopped_.load()) return;
    reason_ = reason;
    stopped_.store(true, std::memory_order_release);
  }
  std::string why() const {
    std::lock_guard lock(mutex_);
    return "writes stopped after a storage error (" + reason_ + "); reads go on; restart the node once the disk is fixed";
  }

 private:
  std::atomic<bool> stopped_{false};
  mutable std::mutex mutex_;
  std::string reason_;
};

class GateListener final : public rocksdb::EventListener {
 public:
  explicit GateListener(WriteGate& gate) : gate_(gate) {}
  void OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* error) override {
    if (error && !error->ok()) gate_.stop(error->ToString());
  }

 private:
  WriteGate& gate_;
};

// RocksDB's own log goes to stderr, warnings and errors only, instead of a LOG file in the data
// directory: on a full disk that file's writer fails first, and Debian's build of RocksDB then aborts
// the process (an assertion) the next time the error handler logs to it.
class StderrLogger final : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char buf[2048];
    int n = std::snprintf(buf, sizeof buf, "kvnode: rocksdb: ");
    const int m = std::vsnprintf(buf + n, sizeof buf - static_cast<std::size_t>(n) - 1, format, ap);
    n = std::min<int>(static_cast<int>(sizeof buf) - 2, n + std::max(0, m));
    while (n > 0 && buf[n - 1] == '\n') --n;
    buf[n++] = '\n';
    [[maybe_unused]] const auto w = ::write(2, buf, static_cast<std::size_t>(n));
  }
};

class RocksStore final : public Store {
 public:
  explicit RocksStore(const RocksOptions& o) {
    rocksdb::Options opts;
    opts.listeners.push_back(std::make_shared<GateListener>(gate_));
    opts.info_log = std::make_shared<StderrLogger>();
    opts.create_if_missing = true;
    opts.create_missing_column_families = true;
    opts.IncreaseParallelism(2);
    opts.max_background_jobs = 2;
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
    opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    // Values alone in the default family, so that the plain read path and plain scans never see a
    // tombstone or a tag. A build from before versions refuses this directory (it does not open the
    // versions family) rather than write values without tags.
    const std::vector<rocksdb::ColumnFamilyDescriptor> families{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts)},
        {"tombstones", rocksdb::ColumnFamilyOptions(opts)},
        {"versions", rocksdb::ColumnFamilyOptions(opts)}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    const auto s = rocksdb::DB::Open(rocksdb::DBOptions(opts), o.dir, families, &handles, &db);
    if (!s.ok()) throw StoreError("cannot open RocksDB at " + o.dir + ": " + s.ToString());
    db_.reset(db);
    data_ = handles[0];
    tombs_ = handles[1];
    versions_ = handles[2];
    // The WAL is written (to the OS) before Put returns, so an acknowledged write survives kill -9.
    // With sync, it is also fsynced before the write is acknowledged; then every write goes through
    // the group committer, which shares one fsync among all writes queued while the last one ran.
    write_.sync = o.sync;
    try {
      upgrade_layout(o.dir);
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
    const auto s = db_->Get(rocksdb::ReadOptions(), data_, slice(key), &value);
    if (s.ok()) return StoreStatus::ok;
    if (s.IsNotFound()) return StoreStatus::not_found;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus get_versioned(std::string_view key, std::string& value, Tag& tag, bool& tombstone,
                            std::string& err) override {
    // One MultiGet over both families reads them at one point in time (no explicit snapshot, which
    // would take the database's mutex): the value and the tag of one write, never of two.
    rocksdb::ColumnFamilyHandle* families[] = {versions_, data_};
    const rocksdb::Slice keys[] = {slice(key), slice(key)};
    rocksdb::PinnableSlice found[2];
    rocksdb::Status statuses[2];
    db_->MultiGet(rocksdb::ReadOptions(), 2, families, keys, found, statuses);
    Held held;
    auto s = held_from(statuses[0], view(found[0]), key, held);
    if (s.ok() && held.value()) s = statuses[1].IsNotFound() ? missing_value(key) : statuses[1];
    if (!s.ok()) {
      err = s.ToString();
      return StoreStatus::error;
    }
    tag = held.tag;
    tombstone = held.tombstone();
    if (!held.value()) return StoreStatus::not_found;
    value.assign(found[1].data(), found[1].size());
    return StoreStatus::ok;
  }

  WriteResult write(WriteOp op) override {
    if (committer_) return committer_->submit_and_wait(std::move(op));
    // The stripe makes the read of the tag held and the write one step against other writes of
    // the key (a rebalancer's ingest or drop of it included).
    std::lock_guard lock(stripe(op.key));
    return apply_one(op);
  }

  std::uint64_t key_count() override { return estimate(data_); }
  std::uint64_t tombstone_count() override { return estimate(tombs_); }

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
    const auto s = versioned ? scan_versioned(ranges, after, limit, max_bytes, out) : scan_values(ranges, after, limit, max_bytes, out);
    if (s.ok()) return StoreStatus::ok;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus count(std::span<const HashRange> ranges, std::uint64_t& n, std::string& err) override {
    n = 0;
    RangeIterator ri;
    for (const auto& r : ranges) {
      auto& it = open_range(ri, data_, r);
      for (it->Seek(be64_key(r.lo)); it->Valid() && read_be64(view(it->key())) <= r.hi; it->Next()) ++n;
      if (!it->status().ok()) {
        err = it->status().ToString();
        return StoreStatus::error;
      }
    }
    return StoreStatus::ok;
  }

  StoreStatus ingest(std::span<const Record> records, std::size_t& written, std::size_t& conflicts,
                     std::string& err) override {
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
      for (const auto& r : records) ops.push_back(op_of(r));
      for (auto& r : committer_->submit_all_and_wait(std::move(ops)))
        if (!tally(std::move(r))) return StoreStatus::error;
      return StoreStatus::ok;
    }
    for (const auto& r : records) {
      const WriteOp op = op_of(r);
      std::lock_guard lock(stripe(op.key));
      if (!tally(apply_one(op))) return StoreStatus::error;
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
      RangeIterator ri;
      for (const auto& r : ranges) {
        auto& it = open_range(ri, cf, r);
        for (it->Seek(be64_key(r.lo)); it->Valid() && read_be64(view(it->key())) <= r.hi; it->Next()) {
          batch.push_back({kind, std::string(view(it->key())), {}});
          if (batch.size() >= kDropBatch && !drop_batch(batch, err)) return StoreStatus::error;
        }
        if (!it->status().ok()) {
          err = it->status().ToString();
          return StoreStatus::error;
        }
      }
    }
    return drop_batch(batch, err) ? StoreStatus::ok : StoreStatus::error;
  }

 private:
  static rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }
  static std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

  void close() {
    if (!db_) return;
    if (!gate_.stopped()) db_->FlushWAL(true);
    for (auto* cf : {data_, tombs_, versions_}) db_->DestroyColumnFamilyHandle(cf);
    db_->Close();
    db_.reset();
  }

  // ---- reading what a key holds ----

  // `held` from the answer of a Get on the versions family.
  static rocksdb::Status held_from(const rocksdb::Status& s, std::string_view entry, std::string_view key, Held& held) {
    held = {};
    if (s.IsNotFound()) return rocksdb::Status::OK();
    if (!s.ok()) return s;
    return decode_version(entry, held) ? s : bad_version(key);
  }

  rocksdb::Status read_held(std::string_view key, Held& held) {
    rocksdb::PinnableSlice entry;
    const auto s = db_->Get(rocksdb::ReadOptions(), versions_, slice(key), &entry);
    return held_from(s, view(entry), key, held);
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
  // (a batch holds keys of any stripe; up to kDropBatch of them hold the stripes for a few ms).
  bool drop_batch(std::vector<WriteOp>& batch, std::string& err) {
    if (batch.empty()) return true;
    std::vector<WriteResult> results;
    if (committer_) {
      results = committer_->submit_all_and_wait(std::move(batch));
    } else {
      results.resize(batch.size());
      std::vector<const WriteOp*> ops;
      for (const auto& op : batch) ops.push_back(&op);
      std::array<std::unique_lock<std::mutex>, kStripes> locks;
      for (std::size_t i = 0; i < kStripes; ++i) locks[i] = std::unique_lock(stripes_[i]);  // in order: no deadlock
      apply(ops, results);
    }
    batch.clear();
    for (auto& r : results) {
      if (r.status == StoreStatus::error) {
        err = std::move(r.err);
        return false;
      }
    }
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
    rocksdb::WriteBatch wb;
    std::unordered_map<std::string_view, Staged> staged;  // only with more than one op
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const WriteOp& op = *ops[i];
      const auto earlier = staged.find(op.key);
      Held before;
      if (earlier != staged.end()) {
        before = earlier->second.held;
      } else if (auto s = read_held(op.key, before); !s.ok()) {
        results[i] = {StoreStatus::error, s.ToString()};
        continue;
      }
      if (op.kind == WriteOp::Kind::drop_value || op.kind == WriteOp::Kind::drop_tombstone) {
        results[i].applied = drops(op.kind, before);
        if (!results[i].applied) continue;
        stage_drop(wb, op.key, before);
        if (ops.size() > 1) staged[op.key] = {};
        continue;
      }
      rocksdb::Status read;  // of the held value, read only to settle two writes with one tag
      const Outcome o = decide(op, before, tags_, [&] {
        if (earlier != staged.end()) return earlier->second.value == op.value;
        std::string held_value;
        read = db_->Get(rocksdb::ReadOptions(), data_, slice(op.key), &held_value);
        if (read.IsNotFound()) read = missing_value(op.key);
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
      if (ops.size() > 1) staged[op.key] = {o.now, op.value};
    }
    if (wb.Count() == 0) return;
    if (auto failed = gated([&] { return db_->Write(write_, &wb); }))
      for (std::size_t i = 0; i < ops.size(); ++i)
        if (results[i].status != StoreStatus::error) results[i] = {StoreStatus::error, *failed};
  }

  // An applied put or delete: the value or the tombstone, and its tag, in one batch.
  void stage_write(rocksdb::WriteBatch& wb, const WriteOp& op, const Held& before, const Held& now) {
    const auto k = slice(op.key);
    if (now.value()) {
      wb.Put(data_, k, slice(op.value));
      if (before.tombstone()) wb.Delete(tombs_, k);
    } else {
      if (before.value()) wb.Delete(data_, k);
      if (!before.tombstone()) wb.Put(tombs_, k, rocksdb::Slice());
    }
    wb.Put(versions_, k, encode_version(now));
  }

  // A key dropped: it then holds nothing, not even a tag.
  void stage_drop(rocksdb::WriteBatch& wb, std::string_view key, const Held& before) {
    wb.Delete(before.value() ? data_ : tombs_, slice(key));
    wb.Delete(versions_, slice(key));
  }

  // ---- scans ----

  // An iterator bounded by a range's end. Without the bound, a Seek into a stretch of deleted keys
  // (a rebalance just dropped them) walks every tombstone up to the next live key, wherever that is:
  // measured, 1.7 ms per Seek after 25k deletes, 43 s for one rebalance's 24k ranges.
  struct RangeIterator {
    std::string bound_key;
    rocksdb::Slice bound;
    std::unique_ptr<rocksdb::Iterator> it;
  };
  std::unique_ptr<rocksdb::Iterator>& open_range(RangeIterator& ri, rocksdb::ColumnFamilyHandle* cf, const HashRange& r,
                                                 const rocksdb::Snapshot* snapshot = nullptr) {
    ri.it.reset();  // before its bound changes
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot;
    if (r.hi < std::numeric_limits<std::uint64_t>::max()) {
      ri.bound_key = be64_key(r.hi + 1);
      ri.bound = rocksdb::Slice(ri.bound_key);
      ro.iterate_upper_bound = &ri.bound;
    }
    ri.it.reset(db_->NewIterator(ro, cf));
    return ri.it;
  }

  // Positions `it` at the first key of `r` to scan: after the cursor `after` when it lies in `r`.
  static void seek_start(rocksdb::Iterator& it, const HashRange& r, std::string_view after) {
    if (!after.empty() && read_be64(after) >= r.lo) {
      it.Seek(slice(after));
      if (it.Valid() && it.key() == slice(after)) it.Next();
    } else {
      it.Seek(be64_key(r.lo));
    }
  }

  static bool batch_full(const ScanBatch& out, std::size_t limit, std::size_t max_bytes) {
    return out.count == limit || (out.count > 0 && out.records.size() >= max_bytes);
  }

  // Values only, from the default family.
  rocksdb::Status scan_values(std::span<const HashRange> ranges, std::string_view after, std::size_t limit,
                              std::size_t max_bytes, ScanBatch& out) {
    RangeIterator ri;
    for (const auto& r : ranges) {
      auto& it = open_range(ri, data_, r);
      for (seek_start(*it, r, after); it->Valid() && read_be64(view(it->key())) <= r.hi; it->Next()) {
        if (batch_full(out, limit, max_bytes)) return rocksdb::Status::OK();
        append_record(out.records, view(it->key()), view(it->value()));
        out.last_key.assign(it->key().data(), it->key().size());
        ++out.count;
      }
      if (!it->status().ok()) return it->status();
    }
    out.done = true;
    return rocksdb::Status::OK();
  }

  // Values and tombstones with their tags: the versions family names every key, and a second
  // iterator over the default family, walking alongside, supplies the values. Both read one
  // snapshot, so each value goes with its own tag.
  rocksdb::Status scan_versioned(std::span<const HashRange> ranges, std::string_view after, std::size_t limit,
                                 std::size_t max_bytes, ScanBatch& out) {
    rocksdb::ManagedSnapshot snapshot(db_.get());
    RangeIterator vri, dri;
    for (const auto& r : ranges) {
      auto& it = open_range(vri, versions_, r, snapshot.snapshot());
      auto& values = open_range(dri, data_, r, snapshot.snapshot());
      for (seek_start(*it, r, after); it->Valid() && read_be64(view(it->key())) <= r.hi; it->Next()) {
        if (batch_full(out, limit, max_bytes)) return rocksdb::Status::OK();
        const auto key = it->key();
        Record rec{view(key), {}};
        Held held;
        if (!decode_version(view(it->value()), held)) return bad_version(view(key));
        rec.tag = held.tag;
        rec.tombstone = held.tombstone();
        if (held.value()) {
          // Values are a subset of the versioned keys, in the same order: the value iterator is
          // usually already there.
          if (!values->Valid() || values->key() != key) values->Seek(key);
          if (!values->Valid() || values->key() != key)
            return values->status().ok() ? missing_value(view(key)) : values->status();
          rec.value = view(values->value());
          values->Next();
        }
        append_versioned_record(out.records, rec);
        out.last_key.assign(key.data(), key.size());
        ++out.count;
      }
      if (!it->status().ok()) return it->status();
    }
    out.done = true;
    return rocksdb::Status::OK();
  }

  // ---- the upgrade of a data directory written before versions ----

  // A directory from before versions has values and tombstones but no versions family (RocksDB
  // creates it empty at open). Each value and each tombstone gets the entry of Tag{}, the oldest
  // tag, which every tagged write beats and which a plain copy meets as "held" (put-if-absent, as
  // before). A key with both a value and a tombstone (a put after a rebalance's delete) holds the
  // value, which came later. The marker is written last, durably: an upgrade cut short runs again,
  // and skips the entries it already wrote. Nothing else writes until the store is open.
  void upgrade_layout(const std::string& dir) {
    auto check = [&](const rocksdb::Status& s) {
      if (!s.ok()) throw StoreError("cannot upgrade " + dir + " to per-key versions: " + s.ToString());
    };
    auto has = [&](rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key) {
      rocksdb::PinnableSlice ignored;
      const auto s = db_->Get(rocksdb::ReadOptions(), cf, key, &ignored);
      if (!s.IsNotFound()) check(s);
      return s.ok();
    };
    if (has(versions_, slice(kLayoutKey))) return;
    rocksdb::WriteBatch wb;
    auto flush = [&] {
      check(db_->Write(write_, &wb));
      wb.Clear();
    };
    auto each_key = [&](rocksdb::ColumnFamilyHandle* cf, auto&& fn) {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        fn(it->key());
        if (wb.Count() >= kDropBatch) flush();
      }
      check(it->status());
      flush();
    };
    const std::string value_entry = encode_version({Held::Kind::value, {}});
    const std::string tombstone_entry = encode_version({Held::Kind::tombstone, {}});
    each_key(data_, [&](const rocksdb::Slice& key) {
      if (!has(versions_, key)) wb.Put(versions_, key, value_entry);
    });
    each_key(tombs_, [&](const rocksdb::Slice& key) {
      if (has(data_, key)) wb.Delete(tombs_, key);
      else if (!has(versions_, key)) wb.Put(versions_, key, tombstone_entry);
    });
    wb.Put(versions_, slice(kLayoutKey), slice(kLayoutVersion));
    rocksdb::WriteOptions durable;
    durable.sync = true;
    check(db_->Write(durable, &wb));
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

  std::uint64_t estimate(rocksdb::ColumnFamilyHandle* cf) {
    std::uint64_t n = 0;
    db_->GetIntProperty(cf, "rocksdb.estimate-num-keys", &n);
    return n;
  }

  // Stored keys begin with their ring hash: its last byte spreads keys evenly over the stripes.
  std::mutex& stripe(std::string_view key) { return stripes_[static_cast<unsigned char>(key[kStorageKeyPrefix - 1]) % kStripes]; }

  static constexpr std::size_t kStripes = 64;
  static constexpr std::size_t kDropBatch = 1024;  // keys per atomic drop batch (and upgrade write)

  WriteGate gate_;  // before db_: the listener uses it until the database is closed
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* data_ = nullptr;
  rocksdb::ColumnFamilyHandle* tombs_ = nullptr;
  rocksdb::ColumnFamilyHandle* versions_ = nullptr;
  rocksdb::WriteOptions write_;
  std::array<std::mutex, kStripes> stripes_;
  NodeTags tags_;  // the tags of untagged writes (node/versions.hpp)
  // With sync only. Emplaced once everything apply() uses exists; reset before the database closes.
  std::optional<GroupCommitter> committer_;
};

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options) { return std::make_unique<RocksStore>(options); }

}  // namespace kv
