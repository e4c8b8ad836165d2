// A node's storage engine. Keys passed here are storage keys (common/storage_key.hpp): the ring hash
// first, so each ring arc is one contiguous key range. Every method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ring_change.hpp"
#include "common/transfer.hpp"

namespace kv {

enum class StoreStatus { ok, not_found, error };

// A write handed to the group committer.
struct WriteOp {
  // put_if_absent: the rebalancer's copy; written only when the key has neither a value nor a
  // tombstone here, so it never overwrites a newer client write and never revives a deleted key.
  enum class Kind { put, del, put_if_absent } kind = Kind::put;
  std::string key;  // storage key
  std::string value;
  bool tombstone = false;  // del: also leave a tombstone (during a rebalance, on the key's new owner)
};

struct WriteResult {
  StoreStatus status = StoreStatus::ok;  // put_if_absent: not_found when it was skipped
  std::string err;
};

// One batch of a scan over ring ranges: records (transfer.hpp format) in stored-key order.
struct ScanBatch {
  std::string records;
  std::size_t count = 0;
  std::string last_key;  // the last stored key returned: the cursor to resume after
  bool done = false;     // every range was scanned to its end
};

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Store {
 public:
  virtual ~Store() = default;
  // On error, `err` says why (the storage engine's own message).
  virtual StoreStatus get(std::string_view key, std::string& value, std::string& err) = 0;
  // Returns once the write is durable as configured: in the write-ahead log (survives a process
  // crash), and with sync on, fsynced (survives power loss).
  virtual StoreStatus put(std::string_view key, std::string_view value, std::string& err) = 0;
  // not_found when the key was absent. With `tombstone`, a tombstone is left for the key whether it
  // was present or not (see put_if_absent); drop() removes tombstones.
  virtual StoreStatus del(std::string_view key, bool tombstone, std::string& err) = 0;
  // Exact for the memory engine; RocksDB's estimate otherwise.
  virtual std::uint64_t key_count() = 0;
  virtual std::string_view engine() const noexcept = 0;
  // Makes everything acknowledged durable on disk (called on clean shutdown).
  virtual void flush() = 0;
  // Empty while writes work; after a storage error that stopped them, why (reads still work).
  virtual std::string write_error() const { return {}; }

  // True when each write waits for an fsync: the server should then hand writes to submit() and
  // await the answer instead of blocking its event loop in put()/del().
  virtual bool group_commit() const noexcept { return false; }
  // Group commit: queues `op`; a committer thread applies everything queued since its last commit
  // as one batch with one fsync, then calls each `done` (on the committer thread). Only meaningful
  // when group_commit() is true; the default applies the write inline.
  virtual void submit(WriteOp op, std::function<void(WriteResult)> done) {
    WriteResult r;
    switch (op.kind) {
      case WriteOp::Kind::put: r.status = put(op.key, op.value, r.err); break;
      case WriteOp::Kind::del: r.status = del(op.key, op.tombstone, r.err); break;
      case WriteOp::Kind::put_if_absent: {
        const Record rec{op.key, op.value};
        std::size_t written = 0;
        r.status = ingest({&rec, 1}, written, r.err);
        if (r.status == StoreStatus::ok && written == 0) r.status = StoreStatus::not_found;
        break;
      }
    }
    done(std::move(r));
  }
  // Group commits so far (each one batch, one fsync); 0 without group commit.
  virtual std::uint64_t commits() const noexcept { return 0; }

  // Moving data (ring-rebalance, through kvnode's /admin endpoints). Ranges are ascending ring-hash
  // ranges (transfer.hpp); stored keys sort by hash, so each range is one contiguous stretch.

  // Stored keys in `ranges`, in order, strictly after the stored key `after` (empty: from the start),
  // until `limit` records or `max_bytes` of records (at least one record) or the end of the ranges.
  virtual StoreStatus scan(std::span<const HashRange> ranges, std::string_view after, std::size_t limit,
                           std::size_t max_bytes, ScanBatch& out, std::string& err) = 0;
  // How many keys `ranges` hold.
  virtual StoreStatus count(std::span<const HashRange> ranges, std::uint64_t& n, std::string& err) = 0;
  // put_if_absent for each record, each atomic against client writes of the same key; `written`
  // counts those stored, the rest were skipped.
  virtual StoreStatus ingest(std::span<const Record> records, std::size_t& written, std::string& err) = 0;
  // Deletes every value (with `data`) and every tombstone (with `tombstones`) in `ranges`.
  virtual StoreStatus drop(std::span<const HashRange> ranges, bool data, bool tombstones, std::string& err) = 0;
  // Tombstones held (RocksDB: its estimate).
  virtual std::uint64_t tombstone_count() = 0;
};

struct RocksOptions {
  std::string dir;
  bool sync = false;  // fsync the WAL before acknowledging each write, with group commit
};

// Throws StoreError when the database cannot be opened (locked, unreadable, ...).
std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options);
std::unique_ptr<Store> open_memory_store();

}  // namespace kv
