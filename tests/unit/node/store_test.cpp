// The storage engines against one contract (memory, RocksDB, RocksDB with --sync): values, the engine's
// gauges and compression, scans, ingest and drop, and group commit as the store uses it (its own tests:
// group_commit_test.cpp). Per-key versions: store_versions_test.cpp; what survives a reopen or a crash:
// store_durability_test.cpp; floors: store_floors_test.cpp.
#include "store_testing.hpp"

#include <rocksdb/db.h>

#include <algorithm>
#include <random>
#include <thread>

namespace {

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

// ---- walking many ranges: the RocksDB engine against the memory engine ----

namespace {

struct Walked {
  std::vector<std::string> keys;  // scan_all's, values only
  std::vector<std::string> versioned;  // key, and "T" for a tombstone
  std::vector<std::string> tombstones;
  std::uint64_t measured = 0;  // keys (the engines count bytes differently)
  bool operator==(const Walked&) const = default;
};

Walked walk(kv::Store& s, const std::vector<HashRange>& ranges, std::size_t limit) {
  Walked w;
  std::string err;
  w.keys = scan_all(s, ranges, limit);
  std::string storage;
  for (const auto& r : versioned_scan(s, storage, limit, ranges))
    w.versioned.push_back(std::string(r.key) + (r.tombstone ? " T" : ""));
  std::vector<std::pair<std::string, Tag>> tombs;
  REQUIRE(s.tombstones(ranges, 0, tombs, err) == StoreStatus::ok);
  for (const auto& [k, t] : tombs) w.tombstones.push_back(k + " " + kv::format_tag(t));
  kv::Store::Size size;
  REQUIRE(s.measure(ranges, size, err) == StoreStatus::ok);
  w.measured = size.keys;
  return w;
}

// Sorted, disjoint ranges over [0, span], some a single hash, with gaps between them; sometimes up to
// the top of the space.
std::vector<HashRange> random_ranges(std::mt19937_64& rnd, std::uint64_t span, std::size_t n) {
  std::vector<HashRange> out;
  std::uint64_t at = rnd() % 4;
  for (std::size_t i = 0; i < n && at <= span; ++i) {
    const std::uint64_t len = rnd() % 3 == 0 ? 0 : rnd() % (span / n + 1);
    out.push_back({at, std::min(span, at + len)});
    at = out.back().hi + 1 + rnd() % (span / n + 1);
  }
  if (rnd() % 4 == 0) out.push_back({kMax - rnd() % 3, kMax});
  return out;
}

}  // namespace

TEST_CASE("rocksdb store: scans, counts, tombstone lists and drops of many ranges match the memory store",
          "[store][rebalance]") {
  std::mt19937_64 rnd(GENERATE(1u, 2u, 3u, 4u));
  Engine mem("memory"), rocks("rocksdb");
  const std::uint64_t span = 4000;
  std::string err;
  // Keys at random hashes, a few at the top; tagged deletes leave tombstones; a drop leaves a stretch
  // of deleted keys in RocksDB (its point deletes), which the walk must pass.
  std::uint64_t counter = 1;
  auto both = [&](kv::WriteOp op) {
    const auto a = mem.store->write(op), b = rocks.store->write(op);
    REQUIRE(a.status == b.status);
  };
  for (int i = 0; i < 3000; ++i) {
    const std::uint64_t h = rnd() % 10 == 0 ? kMax - rnd() % 4 : rnd() % (span + 1);
    const std::string key = stored_at(h, "k" + std::to_string(rnd() % 5000));
    const Tag tag{counter++, 1};
    if (rnd() % 4 == 0) both({K::del, key, {}, tag});
    else both({K::put, key, "v" + std::to_string(i), tag});
  }
  const std::vector<HashRange> dropped = {{1000, 1800}, {2500, 2600}};
  REQUIRE(mem.store->drop(dropped, true, false, err) == StoreStatus::ok);
  REQUIRE(rocks.store->drop(dropped, true, false, err) == StoreStatus::ok);

  for (int round = 0; round < 20; ++round) {
    const std::size_t n = std::size_t{1} << (rnd() % 10);  // 1 to 512 ranges
    auto ranges = random_ranges(rnd, span, n);
    if (round % 5 == 4) std::shuffle(ranges.begin(), ranges.end(), rnd);  // out of order: each on its own
    const std::size_t limit = round % 3 == 0 ? 1 : round % 3 == 1 ? 7 : 100000;
    INFO("round " << round << ", " << ranges.size() << " ranges, batches of " << limit);
    const Walked want = walk(*mem.store, ranges, limit), got = walk(*rocks.store, ranges, limit);
    CHECK(got.keys == want.keys);
    CHECK(got.versioned == want.versioned);
    CHECK(got.tombstones == want.tombstones);
    CHECK(got.measured == want.measured);
  }

  // Dropping many ranges (values, then tombstones) leaves the same keys in both.
  const auto ranges = random_ranges(rnd, span, 300);
  REQUIRE(mem.store->drop(ranges, true, false, err) == StoreStatus::ok);
  REQUIRE(rocks.store->drop(ranges, true, false, err) == StoreStatus::ok);
  const auto more = random_ranges(rnd, span, 200);
  REQUIRE(mem.store->drop(more, false, true, err) == StoreStatus::ok);
  REQUIRE(rocks.store->drop(more, false, true, err) == StoreStatus::ok);
  const std::vector<HashRange> all = {{0, kMax}};
  CHECK(walk(*rocks.store, all, 13) == walk(*mem.store, all, 13));
}
