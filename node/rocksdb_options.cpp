#include "node/rocksdb_options.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>

#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <memory>

namespace kv::rocks {
namespace {

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

rocksdb::CompressionType compression_type(Compression c) {
  const auto type = [c] {
    switch (c) {
      case Compression::none: return rocksdb::kNoCompression;
      case Compression::lz4: return rocksdb::kLZ4Compression;
      case Compression::snappy: return rocksdb::kSnappyCompression;
      case Compression::zstd: return rocksdb::kZSTD;
    }
    return rocksdb::kNoCompression;
  }();
  const auto built = rocksdb::GetSupportedCompressions();
  if (type != rocksdb::kNoCompression && std::find(built.begin(), built.end(), type) == built.end())
    throw StoreError("compression " + std::string(name_of(c)) + " is not built into this RocksDB");
  return type;
}

}  // namespace

rocksdb::Options rocksdb_options(const RocksOptions& o, WriteGate& gate) {
  rocksdb::Options opts;
  opts.listeners.push_back(std::make_shared<GateListener>(gate));
  opts.info_log = std::make_shared<StderrLogger>();
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  opts.IncreaseParallelism(2);
  opts.max_background_jobs = 2;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  table.block_cache = rocksdb::NewLRUCache(o.block_cache_mb << 20);
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  opts.compression = compression_type(o.compression);
  // A bloom filter over the memtable's keys: a GET of a key the memtable does not hold (most of them,
  // once the store is larger than one memtable) skips the skiplist search, whose cache misses made
  // it the largest cost of a GET after a fill (bench/RESULTS.md, "Speed as the data grows").
  opts.memtable_whole_key_filtering = true;
  opts.memtable_prefix_bloom_size_ratio = 0.02;
  return opts;
}

}  // namespace kv::rocks
