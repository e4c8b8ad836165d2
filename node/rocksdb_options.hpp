// How the RocksDB engine configures RocksDB, and the gate that stops writes after a storage error.
// Private to the engine.
#pragma once

#include <rocksdb/options.h>

#include <atomic>
#include <mutex>
#include <string>

#include "node/store.hpp"

namespace kv::rocks {

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

// The options every family and the database open with. A background error stops `gate`, which must
// outlive the database. Throws StoreError when the chosen compression is not built into RocksDB.
rocksdb::Options rocksdb_options(const RocksOptions& o, WriteGate& gate);

}  // namespace kv::rocks
