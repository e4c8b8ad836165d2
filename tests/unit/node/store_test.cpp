// The storage engines against one contract (memory, RocksDB, RocksDB with --sync): values, tombstones,
// per-key versions, scans, ingest and drop, and group commit as the store uses it (its own tests:
// group_commit_test.cpp).
#include <catch2/catch.hpp>

#include <rocksdb/db.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <ostream>
#include <random>
#include <thread>
#include <tuple>

#include "common/storage_key.hpp"
#include "common/version.hpp"
#include "node/store.hpp"

namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/kvring-store-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

kv::WriteResult submit_wait(kv::Store& s, kv::WriteOp op) {
  std::promise<kv::WriteResult> p;
  auto f = p.get_future();
  s.submit(std::move(op), [&p](kv::WriteResult r) { p.set_value(std::move(r)); });
  return f.get();
}

void basic_semantics(kv::Store& s) {
  std::string v, err;
  CHECK(s.get(kv::storage_key("a"), v, err) == kv::StoreStatus::not_found);
  CHECK(s.put(kv::storage_key("a"), "1", err) == kv::StoreStatus::ok);
  CHECK(s.get(kv::storage_key("a"), v, err) == kv::StoreStatus::ok);
  CHECK(v == "1");
  CHECK(s.put(kv::storage_key("a"), "2", err) == kv::StoreStatus::ok);
  CHECK(s.get(kv::storage_key("a"), v, err) == kv::StoreStatus::ok);
  CHECK(v == "2");
  CHECK(s.del(kv::storage_key("a"), err) == kv::StoreStatus::ok);
  CHECK(s.del(kv::storage_key("a"), err) == kv::StoreStatus::not_found);
  CHECK(s.get(kv::storage_key("a"), v, err) == kv::StoreStatus::not_found);
  std::string big(1 << 20, 'x');
  CHECK(s.put(kv::storage_key("big"), big, err) == kv::StoreStatus::ok);
  CHECK(s.get(kv::storage_key("big"), v, err) == kv::StoreStatus::ok);
  CHECK(v == big);
}

}  // namespace

TEST_CASE("memory store: put, get, overwrite, delete", "[store]") {
  auto s = kv::open_memory_store();
  basic_semantics(*s);
  CHECK(s->key_count() == 1);
  CHECK_FALSE(s->group_commit());
}

TEST_CASE("rocksdb store: put, get, overwrite, delete, reopen", "[store]") {
  TempDir dir;
  for (bool sync : {false, true}) {
    INFO("sync " << sync);
    const std::string path = (dir.path / (sync ? "sync" : "nosync")).string();
    {
      auto s = kv::open_rocksdb_store({path, sync});
      CHECK(s->group_commit() == sync);
      basic_semantics(*s);
      std::string err;
      CHECK(s->put(kv::storage_key("kept"), "yes", err) == kv::StoreStatus::ok);
    }
    auto s = kv::open_rocksdb_store({path, sync});
    std::string v, err;
    CHECK(s->get(kv::storage_key("kept"), v, err) == kv::StoreStatus::ok);
    CHECK(v == "yes");
  }
}

TEST_CASE("rocksdb store: a second open of one directory is refused", "[store]") {
  TempDir dir;
  auto s = kv::open_rocksdb_store({dir.path.string(), false});
  CHECK_THROWS_WITH(kv::open_rocksdb_store({dir.path.string(), false}),
                    Catch::Matchers::StartsWith("cannot open RocksDB at " + dir.path.string() + ": IO error"));
}

TEST_CASE("rocksdb store: the engine's gauges follow what it holds; the memory store has none", "[store]") {
  CHECK(kv::open_memory_store()->engine_stats().sst_bytes == 0);
  TempDir dir;
  auto s = kv::open_rocksdb_store({dir.path.string(), false, 3});
  const auto fresh = s->engine_stats();
  CHECK(fresh.block_cache_capacity == 3u << 20);  // --block-cache-mb reaches RocksDB
  CHECK(fresh.sst_bytes == 0);
  std::string err, v;
  for (int i = 0; i < 2000; ++i) REQUIRE(s->put(kv::storage_key("g" + std::to_string(i)), std::string(100, 'x'), err) == kv::StoreStatus::ok);
  CHECK(s->engine_stats().memtable_bytes > 200000);
  s.reset();
  s = kv::open_rocksdb_store({dir.path.string(), false, 3});  // the memtable is now a table file
  const auto flushed = s->engine_stats();
  CHECK(flushed.sst_bytes > 0);
  CHECK(flushed.l0_files >= 1);
  CHECK(s->get(kv::storage_key("g7"), v, err) == kv::StoreStatus::ok);
  CHECK(s->engine_stats().block_cache_bytes > 0);  // the block that read came from, and its index
}

// --compression reaches the table files: the same compressible records take far less disk with lz4 (or
// zstd, snappy) than with none, and read back the same.
TEST_CASE("rocksdb store: table files are written with the compression asked for", "[store]") {
  const auto table_bytes = [](kv::Compression c) {
    TempDir dir;
    std::string err, v;
    {
      auto s = kv::open_rocksdb_store({dir.path.string(), false, 8, c});
      for (int i = 0; i < 5000; ++i) REQUIRE(s->put(kv::storage_key("c" + std::to_string(i)), std::string(200, 'z'), err) == kv::StoreStatus::ok);
    }
    auto s = kv::open_rocksdb_store({dir.path.string(), false, 8, c});  // the memtable is now a table file
    CHECK(s->get(kv::storage_key("c4321"), v, err) == kv::StoreStatus::ok);
    CHECK(v == std::string(200, 'z'));
    return s->engine_stats().sst_bytes;
  };
  const auto none = table_bytes(kv::Compression::none);
  CHECK(none > 5000u * 200);
  for (auto c : {kv::Compression::lz4, kv::Compression::snappy, kv::Compression::zstd}) {
    CAPTURE(static_cast<int>(c));
    CHECK(table_bytes(c) * 4 < none);
  }
}

// Group commit: the answers are those of the writes applied one by one in submission order, however
// they are batched. Ops submitted back to back from one thread usually share a batch, which is the
// case that needs care (a delete must see a put earlier in its own batch).
TEST_CASE("group commit: results follow submission order within and across batches", "[store]") {
  TempDir dir;
  auto s = kv::open_rocksdb_store({dir.path.string(), true});
  using K = kv::WriteOp::Kind;
  std::uint64_t last_counter = 0;
  for (int round = 0; round < 50; ++round) {
    const std::string k = kv::storage_key("k" + std::to_string(round));
    std::vector<std::promise<kv::WriteResult>> ps(6);
    std::vector<std::future<kv::WriteResult>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    const kv::WriteOp ops[] = {{K::put, k, "v1"}, {K::del, k, {}}, {K::del, k, {}}, {K::put, k, "v2"},
                               {K::put, k, "v3"}, {K::del, kv::storage_key("absent"), {}}};
    for (int i = 0; i < 6; ++i) s->submit(ops[i], [&ps, i](kv::WriteResult r) { ps[i].set_value(std::move(r)); });
    std::vector<kv::StoreStatus> got;
    std::vector<std::uint64_t> counters;  // of the tag held after each
    for (auto& f : fs) {
      const auto r = f.get();
      got.push_back(r.status);
      counters.push_back(r.held.counter);
    }
    using S = kv::StoreStatus;
    REQUIRE(got == std::vector<S>{S::ok, S::ok, S::not_found, S::ok, S::ok, S::not_found});
    // Each untagged write takes the node's next counter, in submission order, and an op sees the
    // tag the op before it stored, in the same batch (the second delete holds the first one's).
    const std::uint64_t c = counters[0];
    REQUIRE(c > last_counter);
    REQUIRE(counters == std::vector<std::uint64_t>{c, c + 1, c + 1, c + 2, c + 3, 0});
    last_counter = c + 3;
    std::string v, err;
    REQUIRE(s->get(k, v, err) == S::ok);
    REQUIRE(v == "v3");
  }
  CHECK(s->commits() >= 1);
  CHECK(s->commits() <= 300);
}

TEST_CASE("group commit: many writers share fsyncs and lose nothing", "[store]") {
  TempDir dir;
  auto s = kv::open_rocksdb_store({dir.path.string(), true});
  constexpr int kThreads = 8, kEach = 200;
  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const auto r = submit_wait(*s, {kv::WriteOp::Kind::put, kv::storage_key(std::to_string(t * kEach + i)), "v"});
        if (r.status != kv::StoreStatus::ok) ++failures;
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  std::string v, err;
  for (int i = 0; i < kThreads * kEach; ++i) REQUIRE(s->get(kv::storage_key(std::to_string(i)), v, err) == kv::StoreStatus::ok);
  // Every write was applied, in at most one commit each.
  CHECK(s->commits() <= kThreads * kEach);
  CHECK(s->commits() >= 1);
}

// ---- moving data: scan, count, ingest (put-if-absent with tombstones), drop ----

namespace {

using kv::HashRange;
constexpr std::uint64_t kMax = ~std::uint64_t{0};

std::string stored_at(std::uint64_t hash, std::string_view key) { return kv::storage_key(key, hash); }

// Scans `ranges` in batches of `limit` and returns every stored key, in order.
std::vector<std::string> scan_all(kv::Store& s, const std::vector<HashRange>& ranges, std::size_t limit) {
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

void moving_semantics(kv::Store& s) {
  std::string err, v;
  // Keys placed at chosen hashes, including both ends of the space.
  const std::vector<std::pair<std::uint64_t, std::string>> placed = {
      {0, "zero"}, {5, "five-a"}, {5, "five-b"}, {100, "hundred"}, {1000, "thousand"}, {kMax - 1, "top-1"}, {kMax, "top"}};
  for (const auto& [h, k] : placed) REQUIRE(s.put(stored_at(h, k), "v-" + k, err) == kv::StoreStatus::ok);

  SECTION("scan returns exactly the keys in the ranges, in order, in any batch size") {
    const std::vector<HashRange> ranges = {{0, 5}, {101, 1000}, {kMax, kMax}};
    for (std::size_t limit : {1u, 2u, 3u, 100u}) {
      const auto keys = scan_all(s, ranges, limit);
      REQUIRE(keys.size() == 5);
      CHECK(keys[0] == stored_at(0, "zero"));
      CHECK(keys[1] == stored_at(5, "five-a"));
      CHECK(keys[2] == stored_at(5, "five-b"));
      CHECK(keys[3] == stored_at(1000, "thousand"));
      CHECK(keys[4] == stored_at(kMax, "top"));
    }
    std::uint64_t n = 0;
    CHECK(s.count(ranges, n, err) == kv::StoreStatus::ok);
    CHECK(n == 5);
    CHECK(s.count(std::vector<HashRange>{{0, kMax}}, n, err) == kv::StoreStatus::ok);
    CHECK(n == placed.size());
    // measure: the same keys, and their bytes as stored (at least the stored keys': hash and key).
    kv::Store::Size size;
    CHECK(s.measure(ranges, size, err) == kv::StoreStatus::ok);
    CHECK(size.keys == 5);
    CHECK(size.bytes >= stored_at(0, "zero").size() + stored_at(5, "five-a").size() + stored_at(5, "five-b").size() +
                            stored_at(1000, "thousand").size() + stored_at(kMax, "top").size());
    kv::Store::Size none;
    CHECK(s.measure(std::vector<HashRange>{{6, 99}}, none, err) == kv::StoreStatus::ok);
    CHECK((none.keys == 0 && none.bytes == 0));
    CHECK(scan_all(s, {{6, 99}}, 10).empty());
  }

  SECTION("max_bytes ends a batch early but always returns at least one record") {
    kv::ScanBatch b;
    CHECK(s.scan(std::vector<HashRange>{{0, kMax}}, "", 100, 1, false, b, err) == kv::StoreStatus::ok);
    CHECK(b.count == 1);
    CHECK_FALSE(b.done);
  }

  SECTION("ingest stores only keys with neither a value nor a tombstone") {
    std::string batch;
    const std::string fresh = kv::storage_key("fresh"), existing = stored_at(100, "hundred"),
                      deleted = kv::storage_key("deleted-meanwhile");
    // A tagged delete (a proxy's, during a ring change) keeps a tombstone for an absent key.
    CHECK(s.write({kv::WriteOp::Kind::del, deleted, {}, kv::Tag{3, 1}}).status == kv::StoreStatus::not_found);
    CHECK(s.tombstone_count() >= 1);
    std::vector<kv::Record> recs = {{fresh, "copied"}, {existing, "stale"}, {deleted, "revived?"}};
    std::size_t written = 0, conflicts = 0;
    CHECK(s.ingest(recs, written, conflicts, err) == kv::StoreStatus::ok);
    CHECK(written == 1);
    CHECK(conflicts == 0);
    CHECK(s.get(fresh, v, err) == kv::StoreStatus::ok);
    CHECK(v == "copied");
    CHECK(s.get(existing, v, err) == kv::StoreStatus::ok);
    CHECK(v == "v-hundred");  // the newer write wins
    CHECK(s.get(deleted, v, err) == kv::StoreStatus::not_found);  // the delete wins

    // A put after the tombstone is a normal write; a later copy still does not overwrite it.
    CHECK(s.put(deleted, "rewritten", err) == kv::StoreStatus::ok);
    CHECK(s.ingest(recs, written, conflicts, err) == kv::StoreStatus::ok);
    CHECK(written == 0);
    CHECK(s.get(deleted, v, err) == kv::StoreStatus::ok);
    CHECK(v == "rewritten");

    // Dropping tombstones lets a copy in again.
    const auto h = kv::read_be64(deleted);
    CHECK(s.del(deleted, err) == kv::StoreStatus::ok);
    CHECK(s.drop(std::vector<HashRange>{{h, h}}, false, true, err) == kv::StoreStatus::ok);
    CHECK(s.ingest(std::vector<kv::Record>{{deleted, "copied"}}, written, conflicts, err) == kv::StoreStatus::ok);
    CHECK(written == 1);
  }

  SECTION("drop removes values in the ranges and nothing else, up to the top of the space") {
    CHECK(s.drop(std::vector<HashRange>{{1, 100}, {kMax - 1, kMax}}, true, false, err) == kv::StoreStatus::ok);
    const auto keys = scan_all(s, {{0, kMax}}, 100);
    REQUIRE(keys.size() == 2);
    CHECK(keys[0] == stored_at(0, "zero"));
    CHECK(keys[1] == stored_at(1000, "thousand"));
  }
}

}  // namespace

TEST_CASE("memory store: scan, count, ingest, drop", "[store][rebalance]") {
  auto s = kv::open_memory_store();
  moving_semantics(*s);
}

TEST_CASE("rocksdb store: scan, count, ingest, drop", "[store][rebalance]") {
  TempDir dir;
  auto s = kv::open_rocksdb_store({dir.path.string(), false});
  moving_semantics(*s);
}

TEST_CASE("rocksdb store with group commit: scan, count, ingest, drop", "[store][rebalance]") {
  TempDir dir;
  auto s = kv::open_rocksdb_store({dir.path.string(), true});
  moving_semantics(*s);
}

TEST_CASE("rocksdb store: tombstones survive a reopen", "[store][rebalance]") {
  TempDir dir;
  const std::string k = kv::storage_key("gone");
  std::string err;
  {
    auto s = kv::open_rocksdb_store({dir.path.string(), false});
    CHECK(s->write({kv::WriteOp::Kind::del, k, {}, kv::Tag{1, 1}}).status == kv::StoreStatus::not_found);
  }
  auto s = kv::open_rocksdb_store({dir.path.string(), false});
  std::size_t written = 0, conflicts = 0;
  CHECK(s->ingest(std::vector<kv::Record>{{k, "old"}}, written, conflicts, err) == kv::StoreStatus::ok);
  CHECK(written == 0);
}

TEST_CASE("ingest racing client writes never overwrites them", "[store][rebalance]") {
  // Writers put "new" values while ingest offers "old" ones for the same keys; every key must end
  // with "new". Without per-key atomicity a check-then-put lets "old" in.
  for (bool sync : {false, true}) {
    TempDir dir;
    auto s = kv::open_rocksdb_store({dir.path.string(), sync});
    std::vector<std::string> keys;
    for (int i = 0; i < 400; ++i) keys.push_back(kv::storage_key("race-" + std::to_string(i)));
    std::vector<kv::Record> recs;
    for (const auto& k : keys) recs.push_back({k, "old"});
    std::thread writer([&] {
      std::string err;
      for (const auto& k : keys) s->put(k, "new", err);
    });
    std::size_t written = 0, conflicts = 0;
    std::string err;
    for (int round = 0; round < 5; ++round) s->ingest(recs, written, conflicts, err);
    writer.join();
    std::size_t wrong = 0;
    for (const auto& k : keys) {
      std::string v;
      if (s->get(k, v, err) != kv::StoreStatus::ok || v != "new") ++wrong;
    }
    CHECK(wrong == 0);
  }
}

// ---- per-key versions (common/version.hpp): the same rule on every engine ----

namespace {

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

kv::WriteResult tagged(kv::Store& s, K kind, const std::string& key, Tag tag, std::string value = {}) {
  return s.write({kind, key, std::move(value), tag});
}
kv::WriteResult untagged(kv::Store& s, K kind, const std::string& key, std::string value = {}) {
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
Seen seen(kv::Store& s, const std::string& key) {
  Seen out{StoreStatus::error, {}, {}, false};
  std::string err;
  out.status = s.get_versioned(key, out.value, out.tag, out.tombstone, err);
  INFO(err);
  return out;
}
std::ostream& operator<<(std::ostream& os, const Seen& x) {
  return os << "{status " << static_cast<int>(x.status) << ", value '" << x.value << "', tag " << kv::format_tag(x.tag)
            << (x.tombstone ? ", tombstone}" : "}");
}

Seen value_at(Tag t, std::string v) { return {StoreStatus::ok, std::move(v), t, false}; }
Seen tombstone_at(Tag t) { return {StoreStatus::not_found, {}, t, true}; }
const Seen kNothing{StoreStatus::not_found, {}, {}, false};

// Every versioned record of the whole ring, scanned in batches of `limit`.
std::vector<kv::Record> versioned_scan(kv::Store& s, std::string& storage, std::size_t limit) {
  std::vector<kv::Record> out;
  std::string after, err;
  storage.clear();
  std::vector<std::string> batches;
  for (int guard = 0; guard < 1000; ++guard) {
    kv::ScanBatch b;
    REQUIRE(s.scan(std::vector<HashRange>{{0, kMax}}, after, limit, 1 << 20, true, b, err) == StoreStatus::ok);
    batches.push_back(std::move(b.records));
    if (b.done) break;
    after = b.last_key;
  }
  for (const auto& b : batches) storage += b;
  REQUIRE(kv::parse_records(storage, out, err, true));
  return out;
}

}  // namespace

TEST_CASE("versions: untagged writes make increasing tags; an untagged delete of no value changes nothing", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  const std::string k = kv::storage_key("k");
  auto r = untagged(s, K::put, k, "1");
  CHECK(r.status == StoreStatus::ok);
  CHECK(r.applied);
  CHECK_FALSE(r.had_value);
  const Tag t1 = r.held;
  CHECK(t1.counter == 1);
  CHECK(seen(s, k) == value_at(t1, "1"));
  r = untagged(s, K::put, k, "2");
  const Tag t2 = r.held;
  CHECK(t2 > t1);
  CHECK(t2.counter == 2);
  CHECK(t2.writer != t1.writer);  // unique per write
  CHECK_FALSE(r.had_value);  // an untagged put does not read what it replaces

  r = untagged(s, K::del, k);
  CHECK(r.status == StoreStatus::ok);
  CHECK(r.applied);
  CHECK(r.had_value);
  CHECK(r.tombstone);
  const Tag t3 = r.held;
  CHECK(t3.counter == 3);
  CHECK(seen(s, k) == tombstone_at(t3));
  CHECK(s.tombstone_count() == 1);

  // Again: 404, and the tombstone stays as it was.
  r = untagged(s, K::del, k);
  CHECK(r.status == StoreStatus::not_found);
  CHECK_FALSE(r.applied);
  CHECK(r.held == t3);
  CHECK(r.tombstone);
  CHECK(seen(s, k) == tombstone_at(t3));

  // A key that never held anything gets no tombstone: nothing to order.
  const std::string never = kv::storage_key("never");
  r = untagged(s, K::del, never);
  CHECK(r.status == StoreStatus::not_found);
  CHECK_FALSE(r.applied);
  CHECK(r.held == Tag{});
  CHECK_FALSE(r.tombstone);
  CHECK(seen(s, never) == kNothing);
  std::string storage;
  CHECK(versioned_scan(s, storage, 100).size() == 1);

  // A put over the tombstone is ordered after it, and replaces it.
  r = untagged(s, K::put, k, "3");
  CHECK(r.held.counter == 4);
  CHECK_FALSE(r.had_value);
  CHECK(seen(s, k) == value_at(r.held, "3"));
  CHECK(s.tombstone_count() == 0);
  CHECK(versioned_scan(s, storage, 100).size() == 1);
  std::string v, err;
  CHECK(s.get(k, v, err) == StoreStatus::ok);
  CHECK(v == "3");
}

TEST_CASE("versions: a tagged write goes in only when newer; one tag, two values is a conflict", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  const std::string k = kv::storage_key("k");
  const Tag t5{5, 1};
  auto r = tagged(s, K::put, k, t5, "a");
  CHECK((r.status == StoreStatus::ok && r.applied && r.held == t5));

  r = tagged(s, K::put, k, {3, 9}, "older");  // superseded: success, nothing changes
  CHECK((r.status == StoreStatus::ok && !r.applied && r.held == t5 && r.had_value));
  r = tagged(s, K::put, k, {5, 0}, "same counter, lower writer");
  CHECK((r.status == StoreStatus::ok && !r.applied));
  r = tagged(s, K::put, k, t5, "a");  // the same write again: idempotent
  CHECK((r.status == StoreStatus::ok && !r.applied && r.held == t5));
  CHECK(seen(s, k) == value_at(t5, "a"));

  r = tagged(s, K::put, k, t5, "b");  // the same tag, another value: a bug, refused
  CHECK(r.status == StoreStatus::conflict);
  CHECK_FALSE(r.applied);
  CHECK(r.held == t5);
  r = tagged(s, K::del, k, t5);  // the same tag, another kind
  CHECK(r.status == StoreStatus::conflict);
  CHECK(seen(s, k) == value_at(t5, "a"));

  const Tag t7{7, 2};
  r = tagged(s, K::put, k, t7, "c");
  CHECK((r.status == StoreStatus::ok && r.applied && r.held == t7));
  // An untagged write is ordered after whatever is held.
  r = untagged(s, K::put, k, "d");
  CHECK(r.held.counter == 8);
  CHECK(seen(s, k) == value_at(r.held, "d"));
}

TEST_CASE("versions: tombstones order deletes, and a tagged delete keeps one where nothing was", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  const std::string k = kv::storage_key("k");
  const Tag t10{10, 1};
  auto r = tagged(s, K::del, k, t10);
  CHECK(r.status == StoreStatus::not_found);  // held no value before
  CHECK(r.applied);
  CHECK(r.tombstone);
  CHECK(r.held == t10);
  CHECK(seen(s, k) == tombstone_at(t10));
  CHECK(s.tombstone_count() == 1);
  CHECK(s.key_count() == 0);

  r = tagged(s, K::put, k, {9, 7}, "late");  // an older put never revives a deleted key
  CHECK((r.status == StoreStatus::ok && !r.applied && r.tombstone && r.held == t10));
  CHECK(seen(s, k) == tombstone_at(t10));
  r = tagged(s, K::del, k, t10);  // the same delete again
  CHECK((r.status == StoreStatus::not_found && !r.applied && r.tombstone));
  r = tagged(s, K::del, k, {8, 1});  // an older delete
  CHECK((r.status == StoreStatus::not_found && !r.applied && r.held == t10));

  r = tagged(s, K::put, k, {11, 1}, "v");
  CHECK((r.status == StoreStatus::ok && r.applied && !r.tombstone));
  CHECK(s.tombstone_count() == 0);
  r = tagged(s, K::del, k, {12, 1});
  CHECK((r.status == StoreStatus::ok && r.applied && r.had_value && r.tombstone));
  r = tagged(s, K::del, k, {13, 1});  // a newer delete of a tombstone: stored, still 404
  CHECK((r.status == StoreStatus::not_found && r.applied && r.held == Tag{13, 1}));
  CHECK(seen(s, k) == tombstone_at({13, 1}));
  std::string v, err;
  CHECK(s.get(k, v, err) == StoreStatus::not_found);
}

TEST_CASE("versions: a plain ingest is put-if-absent; a versioned one is newer-wins, tombstones included", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  const std::string fresh = kv::storage_key("fresh"), valued = kv::storage_key("valued"),
                    deleted = kv::storage_key("deleted"), plain = kv::storage_key("plain");
  REQUIRE(tagged(s, K::put, valued, {5, 1}, "held").applied);
  REQUIRE(tagged(s, K::del, deleted, {5, 1}).applied);
  std::size_t written = 0, conflicts = 0;
  std::string err;

  SECTION("plain records go only where nothing is held, and carry Tag{}") {
    const std::vector<kv::Record> recs = {{fresh, "copied"}, {valued, "stale"}, {deleted, "revived?"}};
    REQUIRE(s.ingest(recs, written, conflicts, err) == StoreStatus::ok);
    CHECK(written == 1);
    CHECK(conflicts == 0);
    CHECK(seen(s, fresh) == value_at({}, "copied"));
    CHECK(seen(s, valued) == value_at({5, 1}, "held"));
    CHECK(seen(s, deleted) == tombstone_at({5, 1}));
    // Tag{} carries no order: another plain copy of a key holding Tag{} is skipped, not a conflict.
    REQUIRE(s.ingest(std::vector<kv::Record>{{fresh, "another"}}, written, conflicts, err) == StoreStatus::ok);
    CHECK(written == 0);
    CHECK(conflicts == 0);
    CHECK(seen(s, fresh) == value_at({}, "copied"));
    // Every real tag beats it.
    CHECK(tagged(s, K::put, fresh, {1, 1}, "tagged").applied);
  }

  SECTION("versioned records: newer wins, equal is idempotent or a conflict, in order within a batch") {
    const std::vector<kv::Record> recs = {
        {fresh, "new", {2, 1}, false},      // nothing held: stored
        {valued, {}, {6, 1}, true},         // a newer tombstone deletes the value
        {deleted, "older", {4, 1}, false},  // older than the tombstone: superseded
        {deleted, {}, {5, 1}, true},        // the same tombstone: idempotent
        {plain, "p1", {7, 1}, false},       // two writes of one key in one batch, in order
        {plain, {}, {8, 1}, true},
        {plain, "p0", {6, 9}, false},       // older than the batch's tombstone before it
        {fresh, "other", {2, 1}, false},    // the same tag as the batch's first record, another value
    };
    REQUIRE(s.ingest(recs, written, conflicts, err) == StoreStatus::ok);
    CHECK(written == 4);
    CHECK(conflicts == 1);
    CHECK(seen(s, fresh) == value_at({2, 1}, "new"));
    CHECK(seen(s, valued) == tombstone_at({6, 1}));
    CHECK(seen(s, deleted) == tombstone_at({5, 1}));
    CHECK(seen(s, plain) == tombstone_at({8, 1}));
    // A tombstone stored by ingest blocks older client writes too.
    CHECK_FALSE(tagged(s, K::put, valued, {6, 0}, "x").applied);
    // And ingesting the same records again changes nothing.
    REQUIRE(s.ingest(recs, written, conflicts, err) == StoreStatus::ok);
    CHECK(written == 0);
    CHECK(conflicts == 1);  // "other" under tag 2.1 again; "new" under it is the same write
  }
}

TEST_CASE("versions: a versioned scan returns values and tombstones with their tags; a plain one values only", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  // Keys at chosen hashes, so their order is known: value, tombstone (of a value), value, tombstone
  // (of nothing), value.
  const std::string a = stored_at(1, "a"), b = stored_at(2, "b"), c = stored_at(3, "c"), d = stored_at(4, "d"),
                    f = stored_at(5, "f");
  const Tag ta = untagged(s, K::put, a, "va").held;
  REQUIRE(untagged(s, K::put, b, "vb").applied);
  const Tag tb = untagged(s, K::del, b).held;
  REQUIRE(tagged(s, K::put, c, {9, 3}, "vc").applied);
  REQUIRE(tagged(s, K::del, d, {4, 4}).applied);
  REQUIRE(tagged(s, K::put, f, {1, 1}, "").applied);  // an empty value is a value

  for (std::size_t limit : {1u, 2u, 100u}) {
    INFO("limit " << limit);
    std::string storage;
    const auto recs = versioned_scan(s, storage, limit);
    REQUIRE(recs.size() == 5);
    const std::vector<std::tuple<std::string, std::string, Tag, bool>> want = {
        {a, "va", ta, false}, {b, "", tb, true}, {c, "vc", {9, 3}, false}, {d, "", {4, 4}, true}, {f, "", {1, 1}, false}};
    for (std::size_t i = 0; i < want.size(); ++i) {
      INFO("record " << i);
      CHECK(recs[i].key == std::get<0>(want[i]));
      CHECK(recs[i].value == std::get<1>(want[i]));
      CHECK(recs[i].tag == std::get<2>(want[i]));
      CHECK(recs[i].tombstone == std::get<3>(want[i]));
    }
  }
  const auto plain = scan_all(s, {{0, kMax}}, 2);
  CHECK(plain == std::vector<std::string>{a, c, f});
  std::uint64_t n = 0;
  std::string err;
  CHECK(s.count(std::vector<HashRange>{{0, kMax}}, n, err) == StoreStatus::ok);
  CHECK(n == 3);  // values only

  // A versioned scan is what a versioned ingest takes: a copy holds the same, tags and all.
  std::string storage;
  const auto recs = versioned_scan(s, storage, 100);
  auto copy = kv::open_memory_store();
  std::size_t written = 0, conflicts = 0;
  REQUIRE(copy->ingest(recs, written, conflicts, err) == StoreStatus::ok);
  CHECK(written == 5);
  for (const auto& k : {a, b, c, d, f}) CHECK(seen(*copy, k) == seen(s, k));
}

TEST_CASE("versions: drop removes values or tombstones with their tags, and only those", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  const std::string a = stored_at(1, "a"), b = stored_at(2, "b");
  REQUIRE(tagged(s, K::put, a, {5, 1}, "va").applied);
  REQUIRE(tagged(s, K::del, b, {5, 1}).applied);
  std::string err;
  const std::vector<HashRange> all = {{0, kMax}};

  CHECK(s.drop(all, false, true, err) == StoreStatus::ok);
  CHECK(seen(s, b) == kNothing);  // forgotten: an older write now goes in
  CHECK(seen(s, a) == value_at({5, 1}, "va"));
  CHECK(tagged(s, K::put, b, {1, 1}, "vb").applied);

  CHECK(s.drop(all, true, false, err) == StoreStatus::ok);
  CHECK(seen(s, a) == kNothing);
  CHECK(seen(s, b) == kNothing);
  std::string storage;
  CHECK(versioned_scan(s, storage, 100).empty());
  std::size_t written = 0, conflicts = 0;
  CHECK(s.ingest(std::vector<kv::Record>{{a, "copied"}}, written, conflicts, err) == StoreStatus::ok);
  CHECK(written == 1);
}

TEST_CASE("versions: a drop never deletes what a write stored after the scan that found the key", "[store][versions]") {
  // A writer turns every key from a tombstone into a value (and back, and again) while drops of
  // tombstones, then of values, run over the whole ring. A drop that deletes what its scan found
  // without checking again in the key's atomic step deletes the writer's newer value (or its tag):
  // at the end each key must hold exactly the writer's last write, a value or a tombstone.
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  constexpr int kKeys = 300, kRounds = 4;
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(kv::storage_key("drop-race-" + std::to_string(i)));
  const std::vector<HashRange> all = {{0, kMax}};
  for (const bool drop_values : {false, true}) {
    INFO("dropping " << (drop_values ? "values" : "tombstones"));
    // Start each key as what is dropped; the writer then stores the other kind, with a newer tag.
    const std::uint64_t base = drop_values ? 100 : 0;
    for (const auto& k : keys) {
      REQUIRE(s.write({drop_values ? K::put : K::del, k, drop_values ? "old" : "", Tag{base + 1, 1}}).status !=
              StoreStatus::error);
    }
    std::atomic<bool> writing{true};
    std::thread writer([&] {
      for (int round = 0; round < kRounds; ++round)
        for (const auto& k : keys) {
          const bool put = drop_values ? round % 2 == 0 : round % 2 == 1;  // the last round: the kept kind
          s.write({put ? K::put : K::del, k, put ? "new" : "", Tag{base + 2 + static_cast<std::uint64_t>(round), 2}});
        }
      writing = false;
    });
    std::string err;
    int drops = 0;
    while (writing || drops == 0) {
      REQUIRE(s.drop(all, drop_values, !drop_values, err) == StoreStatus::ok);
      ++drops;
    }
    writer.join();
    const Tag last{base + 1 + kRounds, 2};
    std::size_t wrong = 0;
    for (const auto& k : keys) {
      const Seen got = seen(s, k);
      // The last round stored the kind that is not dropped: no drop may have removed it.
      const Seen want = drop_values ? tombstone_at(last) : value_at(last, "new");
      if (got != want) {
        ++wrong;
        UNSCOPED_INFO("key " << kv::user_key(k) << ": " << got);
      }
    }
    CHECK(wrong == 0);
    CHECK(drops > 0);
  }
}

TEST_CASE("versions: tags are durable with their values across a reopen", "[store][versions]") {
  for (const bool sync : {false, true}) {
    INFO("sync " << sync);
    TempDir dir;
    const std::string a = kv::storage_key("a"), b = kv::storage_key("b"), c = kv::storage_key("c");
    Tag made, deleted;
    {
      auto s = kv::open_rocksdb_store({dir.path.string(), sync});
      REQUIRE(tagged(*s, K::put, a, {5, 1}, "va").applied);
      made = untagged(*s, K::put, b, "vb").held;
      CHECK(made.counter == 6);  // above every counter the node stored
      REQUIRE(untagged(*s, K::put, c, "vc").applied);
      deleted = untagged(*s, K::del, c).held;
      CHECK(s->tombstone_count() == 1);
    }
    auto s = kv::open_rocksdb_store({dir.path.string(), sync});
    CHECK(seen(*s, a) == value_at({5, 1}, "va"));
    CHECK(seen(*s, b) == value_at(made, "vb"));
    CHECK(seen(*s, c) == tombstone_at(deleted));
    CHECK(s->tombstone_count() == 1);
    CHECK_FALSE(tagged(*s, K::put, a, {4, 9}, "older").applied);
    CHECK(untagged(*s, K::put, c, "again").held > deleted);
    CHECK(s->tombstone_count() == 0);
  }
}

namespace {

using Records = std::vector<std::pair<std::string, std::string>>;

// A data directory written straight with RocksDB: these families (the default one first), with these
// records.
void write_families(const std::string& dir, const std::vector<std::pair<std::string, Records>>& families) {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& f : families) descriptors.push_back({f.first, {}});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(opts, dir, descriptors, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (std::size_t i = 0; i < families.size(); ++i)
    for (const auto& [k, v] : families[i].second) REQUIRE(db->Put({}, handles[i], k, v).ok());
  for (auto* h : handles) REQUIRE(db->DestroyColumnFamilyHandle(h).ok());
  REQUIRE(db->Close().ok());
}

// As the build before versions wrote it: values raw in the default column family, tombstones
// (empty values) in "tombstones", no other family.
void write_old_layout(const std::string& dir, const Records& values, const std::vector<std::string>& tombstones) {
  Records t;
  for (const auto& k : tombstones) t.push_back({k, ""});
  write_families(dir, {{rocksdb::kDefaultColumnFamilyName, values}, {"tombstones", t}});
}

std::string be64(std::uint64_t v) {
  std::string out;
  kv::append_be64(out, v);
  return out;
}

// store_rocksdb.cpp's records: a value with its header, a tombstone's tag.
std::string value_record(Tag t, std::string_view v) { return "v" + be64(t.counter) + be64(t.writer) + std::string(v); }
std::string tombstone_record(Tag t) { return be64(t.counter) + be64(t.writer); }

}  // namespace

TEST_CASE("versions: a data directory from before versions is upgraded at open, once", "[store][versions]") {
  TempDir dir;
  const std::string path = dir.path.string();
  const std::string v = stored_at(1, "value"), t = stored_at(2, "tomb"), both = stored_at(3, "both"),
                    lookalike = stored_at(4, "lookalike");
  // "both": deleted during a rebalance, then written again: the value is the newer. "lookalike": a
  // raw value whose bytes look like a header: it gets one all the same.
  const std::string looks = value_record({9, 9}, "x");
  write_old_layout(path, {{v, "old value"}, {both, "rewritten"}, {lookalike, looks}}, {t, both});
  Tag newest{};
  for (int open = 0; open < 2; ++open) {
    INFO("open " << open);
    auto s = kv::open_rocksdb_store({path, false});
    CHECK(seen(*s, v) == value_at({}, "old value"));
    CHECK(seen(*s, t) == tombstone_at({}));
    CHECK(seen(*s, both) == value_at({}, "rewritten"));
    CHECK(seen(*s, lookalike) == value_at({}, looks));
    std::string got, err;
    CHECK(s->get(v, got, err) == StoreStatus::ok);
    CHECK(got == "old value");
    CHECK(s->tombstone_count() == 1);
    std::string storage;
    const auto recs = versioned_scan(*s, storage, 100);
    REQUIRE(recs.size() == 4u + static_cast<unsigned>(open));  // and the fresh keys of the opens before
    CHECK((recs[0].key == v && !recs[0].tombstone && recs[0].tag == Tag{}));
    CHECK((recs[1].key == t && recs[1].tombstone && recs[1].tag == Tag{}));
    CHECK((recs[2].key == both && !recs[2].tombstone && recs[2].value == "rewritten"));
    CHECK((recs[3].key == lookalike && recs[3].value == looks && recs[3].tag == Tag{}));
    // Plain copies of what the old owner held still skip what this node holds.
    std::size_t written = 0, conflicts = 0;
    REQUIRE(s->ingest(std::vector<kv::Record>{{v, "copy"}, {t, "copy"}, {both, "copy"}}, written, conflicts, err) ==
            StoreStatus::ok);
    CHECK(written == 0);
    CHECK(conflicts == 0);
    // Every real tag is newer than the upgrade's, and each open's above the last's.
    const std::string fresh = stored_at(5, "fresh" + std::to_string(open));
    const Tag made = untagged(*s, K::put, fresh, "x").held;
    CHECK(made.counter > newest.counter);
    newest = made;
  }
  auto s = kv::open_rocksdb_store({path, true});
  CHECK(untagged(*s, K::put, v, "new").held.counter > newest.counter);
  CHECK(tagged(*s, K::put, t, {1, 1}, "revived by a newer write").applied);
  CHECK(seen(*s, t) == value_at({1, 1}, "revived by a newer write"));
  CHECK(s->tombstone_count() == 0);
}

TEST_CASE("versions: an upgrade cut short runs again and rewrites only what is left", "[store][versions]") {
  // What an upgrade leaves when cut short: values up to the mark rewritten, the rest raw; some
  // tombstones rewritten, some not; no format marker.
  TempDir dir;
  const std::string path = dir.path.string();
  const std::string a = stored_at(1, "a"), b = stored_at(2, "b"), c = stored_at(3, "c"), d = stored_at(4, "d"),
                    t1 = stored_at(5, "t1"), t2 = stored_at(6, "t2");
  const std::string looks = value_record({}, "raw, after the mark");
  write_families(path, {{rocksdb::kDefaultColumnFamilyName,
                         {{a, value_record({}, "va")}, {b, value_record({}, "vb")}, {c, "vc"}, {d, looks}}},
                        {"tombstones", {{t1, ""}, {t2, tombstone_record({})}}},
                        {"meta", {{"upgrading", b}}}});
  {
    auto s = kv::open_rocksdb_store({path, false});
    CHECK(seen(*s, a) == value_at({}, "va"));  // not rewritten twice
    CHECK(seen(*s, b) == value_at({}, "vb"));
    CHECK(seen(*s, c) == value_at({}, "vc"));
    CHECK(seen(*s, d) == value_at({}, looks));  // after the mark: rewritten, whatever its bytes
    CHECK(seen(*s, t1) == tombstone_at({}));
    CHECK(seen(*s, t2) == tombstone_at({}));
    CHECK(s->tombstone_count() == 2);
    CHECK(untagged(*s, K::put, a, "new").held.counter >= 1);
  }
  // Done: the mark is gone, the marker is there, and the next open changes nothing.
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    REQUIRE(rocksdb::DB::OpenForReadOnly({}, path, {{rocksdb::kDefaultColumnFamilyName, {}}, {"tombstones", {}}, {"meta", {}}},
                                         &handles, &raw)
                .ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string v;
    CHECK(db->Get({}, handles[2], "upgrading", &v).IsNotFound());
    CHECK(db->Get({}, handles[2], "format", &v).ok());
    CHECK(db->Get({}, handles[0], c, &v).ok());
    CHECK(v == value_record({}, "vc"));
    for (auto* h : handles) REQUIRE(db->DestroyColumnFamilyHandle(h).ok());
  }
  auto s = kv::open_rocksdb_store({path, false});
  CHECK(seen(*s, c) == value_at({}, "vc"));
  CHECK(seen(*s, a).value == "new");
}

TEST_CASE("versions: a directory with tags in a \"versions\" family (never released) is refused", "[store][versions]") {
  TempDir dir;
  const std::string path = dir.path.string();
  write_families(path, {{rocksdb::kDefaultColumnFamilyName, {{stored_at(1, "a"), "va"}}},
                        {"tombstones", {}},
                        {"versions", {{"", "1"}, {stored_at(1, "a"), "v" + be64(3) + be64(7)}}}});
  CHECK_THROWS_WITH(kv::open_rocksdb_store({path, false}),
                    Catch::Matchers::StartsWith("cannot open RocksDB at " + path + ": it has a \"versions\" column family"));
}

// ---- the node's counter (node/versions.hpp's NodeTags) ----

TEST_CASE("versions: an untagged write's tag is above every counter the node stored, on any key", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  constexpr std::uint64_t kHuge = std::uint64_t{1} << 40;
  REQUIRE(tagged(s, K::put, kv::storage_key("a"), {kHuge, 3}, "va").applied);
  const Tag b = untagged(s, K::put, kv::storage_key("b"), "vb").held;
  CHECK(b.counter == kHuge + 1);
  // A superseded one moves nothing; a tombstone does; so does an ingested record.
  CHECK_FALSE(tagged(s, K::put, kv::storage_key("a"), {kHuge - 1, 3}, "older").applied);
  CHECK(untagged(s, K::put, kv::storage_key("b"), "vb2").held.counter == kHuge + 2);
  REQUIRE(tagged(s, K::del, kv::storage_key("c"), {2 * kHuge, 3}).applied);
  CHECK(untagged(s, K::put, kv::storage_key("d"), "vd").held.counter == 2 * kHuge + 1);
  std::size_t written = 0, conflicts = 0;
  std::string err;
  REQUIRE(s.ingest(std::vector<kv::Record>{{kv::storage_key("e"), "ve", {4 * kHuge, 5}, false}}, written, conflicts, err) ==
          StoreStatus::ok);
  REQUIRE(written == 1);
  const Tag f = untagged(s, K::put, kv::storage_key("f"), "vf").held;
  CHECK(f.counter == 4 * kHuge + 1);
  // And the key that holds the greatest: an untagged write of it is newer still.
  CHECK(untagged(s, K::put, kv::storage_key("e"), "ve2").held > f);
}

namespace {

// What a crash leaves: a copy of a live store's directory, taken while it is open (the write-ahead
// log as written so far, never closed). Nothing flushes or compacts in these small tests.
std::string crash_image(const TempDir& base, const std::string& live, const std::string& name) {
  const std::string copy = (base.path / name).string();
  fs::copy(live, copy, fs::copy_options::recursive);
  return copy;
}

}  // namespace

TEST_CASE("versions: untagged tags stay above every stored one across reopens and crashes", "[store][versions]") {
  // The counter's reservation is written in the batch of the write that reaches it: a crash right
  // after exactly that write must find it (else the next untagged tag would repeat a counter).
  for (const bool sync : {false, true}) {
    INFO("sync " << sync);
    TempDir base;
    const std::string live = (base.path / "live").string();
    auto s1 = kv::open_rocksdb_store({live, sync});
    const Tag t1 = untagged(*s1, K::put, kv::storage_key("k1"), "v1").held;  // the first: it reaches R = 1
    CHECK(t1.counter == 1);

    auto s2 = kv::open_rocksdb_store({crash_image(base, live, "crash1"), sync});
    CHECK(seen(*s2, kv::storage_key("k1")) == value_at(t1, "v1"));
    const Tag t2 = untagged(*s2, K::put, kv::storage_key("k2"), "v2").held;  // the first since the open: reaches its R
    CHECK(t2.counter > t1.counter);
    CHECK(untagged(*s2, K::put, kv::storage_key("k1"), "v1b").held > t2);

    auto s3 = kv::open_rocksdb_store({crash_image(base, (base.path / "crash1").string(), "crash2"), sync});
    const Tag t3 = untagged(*s3, K::put, kv::storage_key("k3"), "v3").held;
    CHECK(t3.counter > t2.counter + 1);
    // A tagged write far above the reservation carries its own.
    constexpr std::uint64_t kHuge = std::uint64_t{1} << 50;
    REQUIRE(tagged(*s3, K::put, kv::storage_key("k4"), {kHuge, 1}, "v4").applied);

    auto s4 = kv::open_rocksdb_store({crash_image(base, (base.path / "crash2").string(), "crash3"), sync});
    CHECK(seen(*s4, kv::storage_key("k4")) == value_at({kHuge, 1}, "v4"));
    CHECK(untagged(*s4, K::put, kv::storage_key("k5"), "v5").held.counter > kHuge);
    CHECK(untagged(*s4, K::put, kv::storage_key("k4"), "v4b").held.counter > kHuge);

    // A clean close and reopen.
    s1.reset();
    auto s5 = kv::open_rocksdb_store({live, sync});
    CHECK(untagged(*s5, K::put, kv::storage_key("k1"), "again").held > t1);
  }
}

// ---- tombstones and the puts that do not read (store_rocksdb.cpp's TombstoneFilter) ----

TEST_CASE("versions: a put over a tombstone replaces it, read or not; the count stays exact", "[store][versions]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  // Two keys of one bucket of the filter (the ring hash's low 20 bits), one of another.
  const std::string a = stored_at(0x100005, "a"), b = stored_at(0x200005, "b"), c = stored_at(0x300006, "c");
  REQUIRE(tagged(s, K::del, a, {3, 1}).applied);
  CHECK(s.tombstone_count() == 1);
  const Tag tb = untagged(s, K::put, b, "vb").held;  // its bucket has a tombstone, the key none
  CHECK(seen(s, b) == value_at(tb, "vb"));
  CHECK(seen(s, a) == tombstone_at({3, 1}));
  CHECK(s.tombstone_count() == 1);
  const Tag ta = untagged(s, K::put, a, "va").held;
  CHECK(seen(s, a) == value_at(ta, "va"));
  CHECK(s.tombstone_count() == 0);
  std::string storage;
  CHECK(versioned_scan(s, storage, 100).size() == 2);
  // A drop of tombstones keeps the values; a put blind (its bucket now empty) never leaves one.
  REQUIRE(untagged(s, K::put, c, "vc").applied);
  std::string err;
  REQUIRE(s.drop(std::vector<HashRange>{{0, kMax}}, false, true, err) == StoreStatus::ok);
  for (const auto& k : {a, b, c}) CHECK_FALSE(seen(s, k).tombstone);
  CHECK(versioned_scan(s, storage, 100).size() == 3);

  REQUIRE(untagged(s, K::del, a).applied);
  REQUIRE(untagged(s, K::del, b).applied);
  CHECK(s.tombstone_count() == 2);
  REQUIRE(untagged(s, K::put, b, "vb2").applied);
  CHECK(s.tombstone_count() == 1);
  REQUIRE(s.drop(std::vector<HashRange>{{0, kMax}}, false, true, err) == StoreStatus::ok);
  CHECK(s.tombstone_count() == 0);
  CHECK(seen(s, a) == kNothing);
  CHECK(seen(s, b).value == "vb2");

  // Many: deletes of many keys, then puts over them all, in whatever buckets.
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) keys.push_back(kv::storage_key("many-" + std::to_string(i)));
  for (const auto& k : keys) REQUIRE(untagged(s, K::put, k, "v").applied);
  for (const auto& k : keys) REQUIRE(untagged(s, K::del, k).applied);
  CHECK(s.tombstone_count() == keys.size());
  for (std::size_t i = 0; i < keys.size(); i += 2) REQUIRE(untagged(s, K::put, keys[i], "back").applied);
  CHECK(s.tombstone_count() == keys.size() / 2);
  std::size_t tombstones = 0, values = 0;
  for (const auto& r : versioned_scan(s, storage, 500)) (r.tombstone ? tombstones : values) += 1;
  CHECK(tombstones == keys.size() / 2);
  CHECK(values == keys.size() / 2 + 2);
  // Dropping the values leaves the keys put back holding nothing: no tombstone stayed under a value.
  REQUIRE(s.drop(std::vector<HashRange>{{0, kMax}}, true, false, err) == StoreStatus::ok);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < keys.size(); i += 2) wrong += seen(s, keys[i]) == kNothing ? 0 : 1;
  CHECK(wrong == 0);
  CHECK(s.tombstone_count() == keys.size() / 2);
}

TEST_CASE("rocksdb store: the count of tombstones is rebuilt at open", "[store][versions]") {
  TempDir dir;
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) keys.push_back(kv::storage_key("t-" + std::to_string(i)));
  {
    auto s = kv::open_rocksdb_store({dir.path.string(), false});
    for (const auto& k : keys) REQUIRE(untagged(*s, K::put, k, "v").applied);
    for (std::size_t i = 0; i < keys.size(); i += 5) REQUIRE(untagged(*s, K::del, keys[i]).applied);
    CHECK(s->tombstone_count() == 100);
  }
  auto s = kv::open_rocksdb_store({dir.path.string(), false});
  CHECK(s->tombstone_count() == 100);
  // The filter came back with it: a put over each replaces its tombstone.
  for (std::size_t i = 0; i < keys.size(); i += 5) REQUIRE(untagged(*s, K::put, keys[i], "again").applied);
  CHECK(s->tombstone_count() == 0);
  std::string storage;
  for (const auto& r : versioned_scan(*s, storage, 1000)) CHECK_FALSE(r.tombstone);
}

TEST_CASE("versions: concurrent tagged writes of one key end with the newest tag", "[store][versions]") {
  // Tags from several threads at once, puts and deletes: whatever the interleaving, the key ends
  // holding the write with the greatest tag, and no write is refused (tags are unique).
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  const std::string k = kv::storage_key("contended");
  constexpr int kThreads = 4, kEach = 300;
  std::vector<std::vector<std::pair<Tag, bool>>> made(kThreads);  // tag, is a delete
  std::atomic<int> conflicts{0}, errors{0}, regressions{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) * 7919 + 1);
      for (int i = 0; i < kEach; ++i) {
        // Counters rise with i, with a random spread: the threads' writes keep overtaking each
        // other up to the last ones, so any write that is not one atomic step loses the newest.
        const Tag tag{1 + static_cast<std::uint64_t>(i) + rng() % 8, (static_cast<std::uint64_t>(t) << 32) | static_cast<std::uint64_t>(i)};
        const bool del = rng() % 4 == 0;
        // The value names its tag: one tag, one value.
        const auto r = s.write({del ? K::del : K::put, k, del ? "" : kv::format_tag(tag), tag});
        if (r.status == StoreStatus::conflict) ++conflicts;
        if (r.status == StoreStatus::error) ++errors;
        made[static_cast<std::size_t>(t)].push_back({tag, del});
        // Once a write is done, the key never holds an older tag again (a lost update would).
        std::string value, err;
        Tag held;
        bool tombstone = false;
        if (s.get_versioned(k, value, held, tombstone, err) == StoreStatus::error) ++errors;  // no Catch macro off its thread
        if (r.held < tag || held < tag) ++regressions;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(conflicts == 0);
  CHECK(errors == 0);
  CHECK(regressions == 0);
  std::pair<Tag, bool> newest{};
  for (const auto& v : made)
    for (const auto& w : v) newest = std::max(newest, w);
  const Seen got = seen(s, k);
  CHECK(got == (newest.second ? tombstone_at(newest.first) : value_at(newest.first, kv::format_tag(newest.first))));
}

TEST_CASE("versions: concurrent untagged writes of one key each get the next counter", "[store][versions]") {
  // Each untagged write reads the tag held and stores the next one in one atomic step: N writes
  // from several threads at once end at counter N. A read and a write apart would lose some.
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  const std::string k = kv::storage_key("counted");
  constexpr int kThreads = 4, kEach = 250;
  std::atomic<std::uint64_t> applied{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) applied += s.write({i % 5 == 4 ? K::del : K::put, k, "v"}).applied ? 1 : 0;
    });
  for (auto& t : threads) t.join();
  // Every put was applied, and the deletes that found a value; each took one counter.
  CHECK(applied >= kThreads * kEach * 4 / 5);
  std::string storage;
  const auto recs = versioned_scan(s, storage, 10);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].tag.counter == applied);
}

namespace {

// A floor for every key, and the floors' generation, as kvnode's trees answer them (node/floors.hpp).
struct FloorObserver final : kv::StoreObserver {
  std::uint64_t floor = 0, generation = 1;
  void changed(std::string_view, const kv::Held&, const kv::Held&) noexcept override {}
  bool admits(std::string_view, const Tag& tag, std::uint64_t floors_seen) const noexcept override {
    return (floors_seen != 0 && floors_seen == generation) || tag.counter > floor;
  }
  bool buried(std::string_view, const Tag& tag) const noexcept override { return floor != 0 && tag.counter <= floor; }
};

}  // namespace

TEST_CASE("floors: a floored write goes in where nothing is held only above the floor; purges drop exact tombstones", "[store][floors]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  FloorObserver floors;
  s.set_observer(&floors);
  const std::string gone = kv::storage_key("gone"), held = kv::storage_key("held"), other = kv::storage_key("other");
  REQUIRE(tagged(s, K::put, held, {5, 1}, "v").applied);
  REQUIRE(tagged(s, K::put, gone, {5, 1}, "v").applied);
  REQUIRE(tagged(s, K::del, gone, {8, 1}).applied);
  std::string err;

  // The tombstones listed in order with their tags, then purged where they still hold exactly that tag.
  std::vector<std::pair<std::string, Tag>> listed;
  const HashRange all{0, kMax};
  REQUIRE(s.tombstones({&all, 1}, 0, listed, err) == StoreStatus::ok);
  REQUIRE(listed == std::vector<std::pair<std::string, Tag>>{{gone, {8, 1}}});
  std::size_t purged = 0;
  REQUIRE(s.purge_tombstones(std::vector<std::pair<std::string, Tag>>{{gone, {7, 1}}, {held, {5, 1}}}, purged, err) ==
          StoreStatus::ok);
  CHECK(purged == 0);  // another tag; a value
  floors.floor = 8;    // raised first, as kvnode does
  REQUIRE(s.purge_tombstones(listed, purged, err) == StoreStatus::ok);
  CHECK(purged == 1);
  CHECK(seen(s, gone) == kNothing);
  CHECK(s.tombstone_count() == 0);
  s.settle();

  auto floored = [&](K kind, const std::string& key, Tag tag, std::uint64_t floors_seen = 0) {
    kv::WriteOp op{kind, key, kind == K::put ? "late" : "", tag};
    op.floored = true;
    op.floors_seen = floors_seen;
    return s.write(std::move(op));
  };
  // The delayed store of the purged key's older write: refused, nothing stored.
  auto r = floored(K::put, gone, {5, 1});
  CHECK(r.status == StoreStatus::below_floor);
  CHECK_FALSE(r.applied);
  CHECK(floored(K::put, other, {8, 9}).status == StoreStatus::below_floor);  // at the floor: refused too
  CHECK(seen(s, gone) == kNothing);
  CHECK(seen(s, other) == kNothing);
  // A tombstone at or below the floor where nothing is held is left out as superseded (the key is
  // deleted already; re-made, it would let an older value in by its tag); above the floor it goes in.
  r = floored(K::del, kv::storage_key("deleted late"), {4, 1});
  CHECK((r.status == StoreStatus::not_found && !r.applied));
  CHECK(seen(s, kv::storage_key("deleted late")) == kNothing);
  CHECK(floored(K::del, kv::storage_key("deleted late"), {9, 1}).applied);
  // Above the floor: in. Where a key holds something, its tag decides, floor or not.
  CHECK(floored(K::put, other, {9, 1}).applied);
  CHECK(floored(K::put, held, {6, 1}).applied);
  // Unfloored (the rebalancer's copies) and pulled records while the floors stayed put: not checked.
  CHECK(tagged(s, K::put, kv::storage_key("copied"), {2, 1}, "c").applied);
  CHECK(floored(K::put, kv::storage_key("pulled"), {3, 1}, 1).applied);
  // A record pulled before a floor rose (generation 1, now 2): checked.
  floors.generation = 2;
  CHECK(floored(K::put, kv::storage_key("pulled late"), {3, 1}, 1).status == StoreStatus::below_floor);
  std::size_t written = 0, conflicts = 0;
  REQUIRE(s.ingest(std::vector<kv::Record>{{gone, "old", {5, 1}, false}}, written, conflicts, err, 1) == StoreStatus::ok);
  CHECK(written == 0);
  CHECK(seen(s, gone) == kNothing);
  REQUIRE(s.ingest(std::vector<kv::Record>{{gone, "old", {5, 1}, false}}, written, conflicts, err, 2) == StoreStatus::ok);
  CHECK(written == 1);  // the generation it was asked under: no floor rose since
  s.set_observer(nullptr);
}

TEST_CASE("meta records: several in one write, and read back by prefix in order", "[store][floors]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb");
  INFO(name);
  Engine e(name);
  e.store->set_metas(std::vector<std::pair<std::string, std::string>>{{"node/floor/0002", "9"}, {"node/floor/0001", "7"},
                                                                       {"node/other", "x"}});
  CHECK(e.store->metas("node/floor/") ==
        std::vector<std::pair<std::string, std::string>>{{"node/floor/0001", "7"}, {"node/floor/0002", "9"}});
  CHECK(e.store->meta("node/other") == "x");
  CHECK(e.store->metas("nothing/").empty());
}
