#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store.hpp"

namespace kv {
namespace {

class RocksStore final : public Store {
 public:
  explicit RocksStore(const RocksOptions& o) {
    rocksdb::Options opts;
    opts.create_if_missing = true;
    opts.IncreaseParallelism(2);
    opts.max_background_jobs = 2;
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
    opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    rocksdb::DB* db = nullptr;
    const auto s = rocksdb::DB::Open(opts, o.dir, &db);
    if (!s.ok()) throw StoreError("cannot open RocksDB at " + o.dir + ": " + s.ToString());
    db_.reset(db);
    // The WAL is written (to the OS) before Put returns, so an acknowledged write survives kill -9.
    // With sync, it is also fsynced before the write is acknowledged; then every write goes through
    // the committer thread, which shares one fsync among all writes queued while the last one ran.
    write_.sync = o.sync;
    if (o.sync) committer_ = std::thread([this] { commit_loop(); });
  }

  ~RocksStore() override {
    if (committer_.joinable()) {
      {
        std::lock_guard lock(queue_mutex_);
        stopping_ = true;
      }
      queue_cv_.notify_one();
      committer_.join();
    }
    if (db_) {
      db_->FlushWAL(true);
      db_->Close();
    }
  }

  StoreStatus get(std::string_view key, std::string& value, std::string& err) override {
    const auto s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
    if (s.ok()) return StoreStatus::ok;
    if (s.IsNotFound()) return StoreStatus::not_found;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus put(std::string_view key, std::string_view value, std::string& err) override {
    if (write_.sync) return submit_and_wait({WriteOp::Kind::put, std::string(key), std::string(value)}, err);
    const auto s = db_->Put(write_, rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
    if (s.ok()) return StoreStatus::ok;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus del(std::string_view key, std::string& err) override {
    if (write_.sync) return submit_and_wait({WriteOp::Kind::del, std::string(key), {}}, err);
    // DELETE answers 404 for an absent key, so look first. The lock makes look-then-delete atomic
    // against other deletes (two concurrent deletes of one key: one 200, one 404).
    std::lock_guard lock(delete_mutex_);
    const rocksdb::Slice k(key.data(), key.size());
    std::string ignored;
    auto s = db_->Get(rocksdb::ReadOptions(), k, &ignored);
    if (s.IsNotFound()) return StoreStatus::not_found;
    if (!s.ok()) {
      err = s.ToString();
      return StoreStatus::error;
    }
    s = db_->Delete(write_, k);
    if (s.ok()) return StoreStatus::ok;
    err = s.ToString();
    return StoreStatus::error;
  }

  std::uint64_t key_count() override {
    std::uint64_t n = 0;
    db_->GetIntProperty("rocksdb.estimate-num-keys", &n);
    return n;
  }

  std::string_view engine() const noexcept override { return "rocksdb"; }

  void flush() override { db_->FlushWAL(true); }

  bool group_commit() const noexcept override { return write_.sync; }
  std::uint64_t commits() const noexcept override { return commits_.load(std::memory_order_relaxed); }

  void submit(WriteOp op, std::function<void(WriteResult)> done) override {
    {
      std::lock_guard lock(queue_mutex_);
      queue_.push_back({std::move(op), std::move(done)});
    }
    queue_cv_.notify_one();
  }

 private:
  struct Pending {
    WriteOp op;
    std::function<void(WriteResult)> done;
  };

  StoreStatus submit_and_wait(WriteOp op, std::string& err) {
    std::promise<WriteResult> promise;
    auto future = promise.get_future();
    submit(std::move(op), [&promise](WriteResult r) { promise.set_value(std::move(r)); });
    WriteResult r = future.get();
    err = std::move(r.err);
    return r.status;
  }

  // The only writer in sync mode, so a delete's existence check cannot race another write.
  void commit_loop() {
    std::vector<Pending> batch;
    for (;;) {
      {
        std::unique_lock lock(queue_mutex_);
        queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing left to commit
        batch.swap(queue_);
      }
      rocksdb::WriteBatch wb;
      std::vector<WriteResult> results(batch.size());
      // Whether each key exists after the ops before it in this batch (a delete must see an earlier
      // put of the same batch).
      std::unordered_map<std::string_view, bool> exists;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const WriteOp& op = batch[i].op;
        const rocksdb::Slice k(op.key);
        if (op.kind == WriteOp::Kind::put) {
          wb.Put(k, rocksdb::Slice(op.value));
          exists[op.key] = true;
          continue;
        }
        bool present;
        if (auto it = exists.find(op.key); it != exists.end()) {
          present = it->second;
        } else {
          std::string ignored;
          const auto s = db_->Get(rocksdb::ReadOptions(), k, &ignored);
          if (!s.ok() && !s.IsNotFound()) {
            results[i] = {StoreStatus::error, s.ToString()};
            continue;
          }
          present = s.ok();
        }
        if (!present) {
          results[i].status = StoreStatus::not_found;
          continue;
        }
        wb.Delete(k);
        exists[op.key] = false;
      }
      const auto s = wb.Count() ? db_->Write(write_, &wb) : rocksdb::Status::OK();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!s.ok() && results[i].status == StoreStatus::ok) results[i] = {StoreStatus::error, s.ToString()};
        batch[i].done(std::move(results[i]));
      }
      batch.clear();
      commits_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_;
  std::mutex delete_mutex_;

  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::vector<Pending> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> commits_{0};
  std::thread committer_;  // last: starts after everything it uses exists
};

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options) { return std::make_unique<RocksStore>(options); }

}  // namespace kv
