// The durable engine: RocksDB, values and rebalance tombstones in two column families. Writes of one
// key are made atomic against each other by a lock stripe, or with --sync by the group committer
// (node/group_commit.hpp), whose thread is then the only writer. The first storage error stops writes.
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
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
#include <unordered_set>
#include <vector>

#include "common/storage_key.hpp"
#include "node/group_commit.hpp"
#include "node/store.hpp"

namespace kv {
namespace {

std::string be64_key(std::uint64_t v) {
  std::string k;
  append_be64(k, v);
  return k;
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
    // Values in the default column family; tombstones (left by deletes during a rebalance) in their
    // own, so that reads and scans of values never see them.
    const std::vector<rocksdb::ColumnFamilyDescriptor> families{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts)},
        {"tombstones", rocksdb::ColumnFamilyOptions(opts)}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    const auto s = rocksdb::DB::Open(rocksdb::DBOptions(opts), o.dir, families, &handles, &db);
    if (!s.ok()) throw StoreError("cannot open RocksDB at " + o.dir + ": " + s.ToString());
    db_.reset(db);
    data_ = handles[0];
    tombs_ = handles[1];
    // The WAL is written (to the OS) before Put returns, so an acknowledged write survives kill -9.
    // With sync, it is also fsynced before the write is acknowledged; then every write goes through
    // the group committer, which shares one fsync among all writes queued while the last one ran.
    write_.sync = o.sync;
    if (o.sync)
      committer_.emplace([this](std::span<const WriteOp* const> ops, std::span<WriteResult> results) { apply(ops, results); });
  }

  ~RocksStore() override {
    committer_.reset();  // first: its last batches still write to db_
    if (db_) {
      if (!gate_.stopped()) db_->FlushWAL(true);
      db_->DestroyColumnFamilyHandle(data_);
      db_->DestroyColumnFamilyHandle(tombs_);
      db_->Close();
    }
  }

  StoreStatus get(std::string_view key, std::string& value, std::string& err) override {
    const auto s = db_->Get(rocksdb::ReadOptions(), data_, slice(key), &value);
    if (s.ok()) return StoreStatus::ok;
    if (s.IsNotFound()) return StoreStatus::not_found;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus put(std::string_view key, std::string_view value, std::string& err) override {
    if (committer_) return commit({WriteOp::Kind::put, std::string(key), std::string(value)}, err);
    // The stripe makes a rebalancer's put-if-absent of this key atomic against this write.
    std::lock_guard lock(stripe(key));
    if (auto failed = gated([&] { return db_->Put(write_, data_, slice(key), slice(value)); })) {
      err = std::move(*failed);
      return StoreStatus::error;
    }
    return StoreStatus::ok;
  }

  StoreStatus del(std::string_view key, bool tombstone, std::string& err) override {
    WriteOp op{WriteOp::Kind::del, std::string(key), {}, tombstone};
    if (committer_) return commit(std::move(op), err);
    // DELETE answers 404 for an absent key, so look first; the stripe makes look-then-delete atomic
    // against other writes of the key (two concurrent deletes: one 200, one 404).
    std::lock_guard lock(stripe(key));
    return apply_one(op, err);
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
                   ScanBatch& out, std::string& err) override {
    RangeIterator ri;
    for (const auto& r : ranges) {
      auto& it = open_range(ri, data_, r);
      if (!after.empty() && read_be64(after) >= r.lo) {
        it->Seek(slice(after));
        if (it->Valid() && it->key() == slice(after)) it->Next();
      } else {
        it->Seek(be64_key(r.lo));
      }
      for (; it->Valid() && read_be64(view(it->key())) <= r.hi; it->Next()) {
        if (out.count == limit || (out.count > 0 && out.records.size() >= max_bytes)) return StoreStatus::ok;
        append_record(out.records, view(it->key()), view(it->value()));
        out.last_key.assign(it->key().data(), it->key().size());
        ++out.count;
      }
      if (!it->status().ok()) {
        err = it->status().ToString();
        return StoreStatus::error;
      }
    }
    out.done = true;
    return StoreStatus::ok;
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

  StoreStatus ingest(std::span<const Record> records, std::size_t& written, std::string& err) override {
    written = 0;
    if (committer_) {
      // Through the committer, the only writer: each check-then-put is atomic, and the whole batch
      // usually shares one fsync.
      std::vector<WriteOp> ops;
      ops.reserve(records.size());
      for (const auto& r : records) ops.push_back({WriteOp::Kind::put_if_absent, std::string(r.key), std::string(r.value)});
      for (auto& r : committer_->submit_all_and_wait(std::move(ops))) {
        if (r.status == StoreStatus::error) {
          err = std::move(r.err);
          return StoreStatus::error;
        }
        if (r.status == StoreStatus::ok) ++written;
      }
      return StoreStatus::ok;
    }
    for (const auto& r : records) {
      WriteOp op{WriteOp::Kind::put_if_absent, std::string(r.key), std::string(r.value)};
      std::lock_guard lock(stripe(r.key));
      const auto s = apply_one(op, err);
      if (s == StoreStatus::error) return s;
      if (s == StoreStatus::ok) ++written;
    }
    return StoreStatus::ok;
  }

  StoreStatus drop(std::span<const HashRange> ranges, bool data, bool tombstones, std::string& err) override {
    // Point deletes of the keys found, not DeleteRange: a rebalance drops tens of thousands of
    // small ranges, and as many range tombstones would slow every later read.
    rocksdb::WriteBatch wb;
    auto flush = [&]() {
      if (wb.Count() == 0) return true;
      auto failed = gated([&] { return db_->Write(write_, &wb); });
      wb.Clear();
      if (failed) err = std::move(*failed);
      return !failed;
    };
    for (auto* cf : {data ? data_ : nullptr, tombstones ? tombs_ : nullptr}) {
      if (!cf) continue;
      RangeIterator ri;
      for (const auto& r : ranges) {
        auto& it = open_range(ri, cf, r);
        for (it->Seek(be64_key(r.lo)); it->Valid() && read_be64(view(it->key())) <= r.hi; it->Next()) {
          wb.Delete(cf, it->key());
          if (wb.Count() >= 1024 && !flush()) return StoreStatus::error;
        }
        if (!it->status().ok()) {
          err = it->status().ToString();
          return StoreStatus::error;
        }
      }
    }
    return flush() ? StoreStatus::ok : StoreStatus::error;
  }

 private:
  static rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }
  static std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

  // An iterator bounded by a range's end. Without the bound, a Seek into a stretch of deleted keys
  // (a rebalance just dropped them) walks every tombstone up to the next live key, wherever that is:
  // measured, 1.7 ms per Seek after 25k deletes, 43 s for one rebalance's 24k ranges.
  struct RangeIterator {
    std::string bound_key;
    rocksdb::Slice bound;
    std::unique_ptr<rocksdb::Iterator> it;
  };
  std::unique_ptr<rocksdb::Iterator>& open_range(RangeIterator& ri, rocksdb::ColumnFamilyHandle* cf, const HashRange& r) {
    ri.it.reset();  // before its bound changes
    rocksdb::ReadOptions ro;
    if (r.hi < std::numeric_limits<std::uint64_t>::max()) {
      ri.bound_key = be64_key(r.hi + 1);
      ri.bound = rocksdb::Slice(ri.bound_key);
      ro.iterate_upper_bound = &ri.bound;
    }
    ri.it.reset(db_->NewIterator(ro, cf));
    return ri.it;
  }

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

  StoreStatus apply_one(const WriteOp& op, std::string& err) {
    WriteResult r;
    const WriteOp* ops[] = {&op};
    apply(ops, {&r, 1});
    err = std::move(r.err);
    return r.status;
  }

  // Through the group committer, waiting for the commit.
  StoreStatus commit(WriteOp op, std::string& err) {
    WriteResult r = committer_->submit_and_wait(std::move(op));
    err = std::move(r.err);
    return r.status;
  }

  // Applies `ops` in order as one WriteBatch (one write, one fsync with sync), each op seeing the
  // ops before it. The caller makes this atomic against other writers of the same keys: a stripe
  // lock, or with sync the group committer, whose thread is then the only writer.
  void apply(std::span<const WriteOp* const> ops, std::span<WriteResult> results) {
    rocksdb::WriteBatch wb;
    std::unordered_map<std::string_view, bool> exists;  // value present, after the earlier ops
    std::unordered_set<std::string_view> tombstoned;     // tombstone written by an earlier op
    auto lookup = [&](rocksdb::ColumnFamilyHandle* cf, std::string_view key, bool& present) {
      std::string ignored;
      const auto s = db_->Get(rocksdb::ReadOptions(), cf, slice(key), &ignored);
      present = s.ok();
      return s.ok() || s.IsNotFound() ? rocksdb::Status::OK() : s;
    };
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const WriteOp& op = *ops[i];
      const rocksdb::Slice k = slice(op.key);
      if (op.kind == WriteOp::Kind::put) {
        wb.Put(data_, k, slice(op.value));
        exists[op.key] = true;
        continue;
      }
      bool present = false;
      if (auto it = exists.find(op.key); it != exists.end()) {
        present = it->second;
      } else if (auto s = lookup(data_, op.key, present); !s.ok()) {
        results[i] = {StoreStatus::error, s.ToString()};
        continue;
      }
      if (op.kind == WriteOp::Kind::del) {
        if (op.tombstone) {
          wb.Put(tombs_, k, rocksdb::Slice());
          tombstoned.insert(op.key);
        }
        if (!present) {
          results[i].status = StoreStatus::not_found;
          continue;
        }
        wb.Delete(data_, k);
        exists[op.key] = false;
        continue;
      }
      // put_if_absent
      bool tomb = tombstoned.count(op.key) > 0;
      if (!present && !tomb) {
        if (auto s = lookup(tombs_, op.key, tomb); !s.ok()) {
          results[i] = {StoreStatus::error, s.ToString()};
          continue;
        }
      }
      if (present || tomb) {
        results[i].status = StoreStatus::not_found;  // skipped: a newer write or a delete won
        continue;
      }
      wb.Put(data_, k, slice(op.value));
      exists[op.key] = true;
    }
    if (wb.Count() == 0) return;
    if (auto failed = gated([&] { return db_->Write(write_, &wb); }))
      for (std::size_t i = 0; i < ops.size(); ++i)
        if (results[i].status != StoreStatus::error) results[i] = {StoreStatus::error, *failed};
  }

  static constexpr std::size_t kStripes = 64;

  WriteGate gate_;  // before db_: the listener uses it until the database is closed
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* data_ = nullptr;
  rocksdb::ColumnFamilyHandle* tombs_ = nullptr;
  rocksdb::WriteOptions write_;
  std::array<std::mutex, kStripes> stripes_;
  // With sync only. Emplaced once everything apply() uses exists; reset before the database closes.
  std::optional<GroupCommitter> committer_;
};

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options) { return std::make_unique<RocksStore>(options); }

}  // namespace kv
