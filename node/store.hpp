// A node's storage engine. Keys passed here are storage keys (common/storage_key.hpp): the ring hash
// first, so each ring arc is one contiguous key range. Every method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kv {

enum class StoreStatus { ok, not_found, error };

// A write handed to the group committer.
struct WriteOp {
  enum class Kind { put, del } kind = Kind::put;
  std::string key;  // storage key
  std::string value;
};

struct WriteResult {
  StoreStatus status = StoreStatus::ok;
  std::string err;
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
  // not_found when the key was absent.
  virtual StoreStatus del(std::string_view key, std::string& err) = 0;
  // Exact for the memory engine; RocksDB's estimate otherwise.
  virtual std::uint64_t key_count() = 0;
  virtual std::string_view engine() const noexcept = 0;
  // Makes everything acknowledged durable on disk (called on clean shutdown).
  virtual void flush() = 0;

  // True when each write waits for an fsync: the server should then hand writes to submit() and
  // await the answer instead of blocking its event loop in put()/del().
  virtual bool group_commit() const noexcept { return false; }
  // Group commit: queues `op`; a committer thread applies everything queued since its last commit
  // as one batch with one fsync, then calls each `done` (on the committer thread). Only meaningful
  // when group_commit() is true; the default applies the write inline.
  virtual void submit(WriteOp op, std::function<void(WriteResult)> done) {
    WriteResult r;
    r.status = op.kind == WriteOp::Kind::put ? put(op.key, op.value, r.err) : del(op.key, r.err);
    done(std::move(r));
  }
  // Group commits so far (each one batch, one fsync); 0 without group commit.
  virtual std::uint64_t commits() const noexcept { return 0; }
};

struct RocksOptions {
  std::string dir;
  bool sync = false;  // fsync the WAL before acknowledging each write, with group commit
};

// Throws StoreError when the database cannot be opened (locked, unreadable, ...).
std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options);
std::unique_ptr<Store> open_memory_store();

}  // namespace kv
