// What the storage engines' tests share: a temporary directory, each engine opened fresh, and short
// forms of writes, versioned reads and scans.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/ring_change.hpp"
#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "common/version.hpp"
#include "node/store.hpp"
#include "tests/unit/temp_dir.hpp"

namespace fs = std::filesystem;

// Inline, in an unnamed namespace: each test file uses some of these.
namespace {

using kv::testing::TempDir;

inline kv::WriteResult submit_wait(kv::Store& s, kv::WriteOp op) {
  std::promise<kv::WriteResult> p;
  auto f = p.get_future();
  s.submit(std::move(op), [&p](kv::WriteResult r) { p.set_value(std::move(r)); });
  return f.get();
}

using kv::HashRange;
constexpr std::uint64_t kMax = ~std::uint64_t{0};

inline std::string stored_at(std::uint64_t hash, std::string_view key) { return kv::storage_key(key, hash); }

// Scans `ranges` in batches of `limit` and returns every stored key, in order.
inline std::vector<std::string> scan_all(kv::Store& s, const std::vector<HashRange>& ranges, std::size_t limit) {
  std::vector<std::string> keys;
  std::string after, err;
  for (int guard = 0; guard < 10000; ++guard) {
    kv::ScanBatch b;
    REQUIRE(s.scan(ranges, after, limit, 1 << 20, false, b, err) == kv::StoreStatus::ok);
    std::vector<kv::Record> recs;
    REQUIRE(kv::parse_records(b.records, recs, err));
    REQUIRE(recs.size() == b.count);
    CHECK(b.count <= limit);
    for (const auto& r : recs) keys.emplace_back(r.key);
    if (b.done) return keys;
    REQUIRE(b.count > 0);
    after = b.last_key;
  }
  FAIL("scan did not finish");
  return keys;
}

using K = kv::WriteOp::Kind;
using kv::StoreStatus;
using kv::Tag;

// One engine, opened fresh: "memory", "rocksdb", or "rocksdb-sync" (every write through the group
// committer).
struct Engine {
  TempDir dir;
  std::unique_ptr<kv::Store> store;
  explicit Engine(const std::string& name) {
    if (name == "memory") store = kv::open_memory_store();
    else store = kv::open_rocksdb_store({dir.path.string(), name == "rocksdb-sync"});
  }
};

inline kv::WriteResult tagged(kv::Store& s, K kind, const std::string& key, Tag tag, std::string value = {}) {
  return s.write({kind, key, std::move(value), tag});
}
inline kv::WriteResult untagged(kv::Store& s, K kind, const std::string& key, std::string value = {}) {
  return s.write({kind, key, std::move(value)});
}

// What a versioned read sees.
struct Seen {
  StoreStatus status;
  std::string value;
  Tag tag;
  bool tombstone;
  bool operator==(const Seen&) const = default;
};
inline Seen seen(kv::Store& s, const std::string& key) {
  Seen out{StoreStatus::error, {}, {}, false};
  std::string err;
  out.status = s.get_versioned(key, out.value, out.tag, out.tombstone, err);
  INFO(err);
  return out;
}
inline std::ostream& operator<<(std::ostream& os, const Seen& x) {
  return os << "{status " << static_cast<int>(x.status) << ", value '" << x.value << "', tag " << kv::format_tag(x.tag)
            << (x.tombstone ? ", tombstone}" : "}");
}

inline Seen value_at(Tag t, std::string v) { return {StoreStatus::ok, std::move(v), t, false}; }
inline Seen tombstone_at(Tag t) { return {StoreStatus::not_found, {}, t, true}; }
const Seen kNothing{StoreStatus::not_found, {}, {}, false};

// Every versioned record of `ranges` (by default the whole ring), scanned in batches of `limit`; the
// records' bytes are in `storage`.
inline std::vector<kv::Record> versioned_scan(kv::Store& s, std::string& storage, std::size_t limit,
                                              const std::vector<HashRange>& ranges = {{0, kMax}}) {
  std::vector<kv::Record> out;
  std::string after, err;
  storage.clear();
  std::vector<std::string> batches;
  bool done = false;
  for (int guard = 0; guard < 100000 && !done; ++guard) {
    kv::ScanBatch b;
    REQUIRE(s.scan(ranges, after, limit, 1 << 20, true, b, err) == StoreStatus::ok);
    batches.push_back(std::move(b.records));
    done = b.done;
    REQUIRE((done || b.count > 0));
    after = b.last_key;
  }
  REQUIRE(done);
  for (const auto& b : batches) storage += b;
  REQUIRE(kv::parse_records(storage, out, err, true));
  return out;
}

}  // namespace
