#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>

#include <mutex>

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
    // With sync, RocksDB also fsyncs it; concurrent writers share one fsync (its write group).
    write_.sync = o.sync;
  }

  ~RocksStore() override {
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
    const auto s = db_->Put(write_, rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
    if (s.ok()) return StoreStatus::ok;
    err = s.ToString();
    return StoreStatus::error;
  }

  StoreStatus del(std::string_view key, std::string& err) override {
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

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_;
  std::mutex delete_mutex_;
};

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options) { return std::make_unique<RocksStore>(options); }

}  // namespace kv
