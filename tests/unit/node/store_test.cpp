// The storage engines against one contract (memory, RocksDB, RocksDB with --sync): values, tombstones,
// scans, ingest and drop, and group commit as the store uses it (its own tests: group_commit_test.cpp).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "common/storage_key.hpp"
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
  CHECK(s.del(kv::storage_key("a"), false, err) == kv::StoreStatus::ok);
  CHECK(s.del(kv::storage_key("a"), false, err) == kv::StoreStatus::not_found);
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

// Group commit: the answers are those of the writes applied one by one in submission order, however
// they are batched. Ops submitted back to back from one thread usually share a batch, which is the
// case that needs care (a delete must see a put earlier in its own batch).
TEST_CASE("group commit: results follow submission order within and across batches", "[store]") {
  TempDir dir;
  auto s = kv::open_rocksdb_store({dir.path.string(), true});
  using K = kv::WriteOp::Kind;
  for (int round = 0; round < 50; ++round) {
    const std::string k = kv::storage_key("k" + std::to_string(round));
    std::vector<std::promise<kv::WriteResult>> ps(6);
    std::vector<std::future<kv::WriteResult>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    const kv::WriteOp ops[] = {{K::put, k, "v1"}, {K::del, k, {}}, {K::del, k, {}}, {K::put, k, "v2"},
                               {K::put, k, "v3"}, {K::del, kv::storage_key("absent"), {}}};
    for (int i = 0; i < 6; ++i) s->submit(ops[i], [&ps, i](kv::WriteResult r) { ps[i].set_value(std::move(r)); });
    std::vector<kv::StoreStatus> got;
    for (auto& f : fs) got.push_back(f.get().status);
    using S = kv::StoreStatus;
    REQUIRE(got == std::vector<S>{S::ok, S::ok, S::not_found, S::ok, S::ok, S::not_found});
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
    REQUIRE(s.scan(ranges, after, limit, 1 << 20, b, err) == kv::StoreStatus::ok);
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
    CHECK(scan_all(s, {{6, 99}}, 10).empty());
  }

  SECTION("max_bytes ends a batch early but always returns at least one record") {
    kv::ScanBatch b;
    CHECK(s.scan(std::vector<HashRange>{{0, kMax}}, "", 100, 1, b, err) == kv::StoreStatus::ok);
    CHECK(b.count == 1);
    CHECK_FALSE(b.done);
  }

  SECTION("ingest stores only keys with neither a value nor a tombstone") {
    std::string batch;
    const std::string fresh = kv::storage_key("fresh"), existing = stored_at(100, "hundred"),
                      deleted = kv::storage_key("deleted-meanwhile");
    CHECK(s.del(deleted, true, err) == kv::StoreStatus::not_found);  // tombstone for an absent key
    CHECK(s.tombstone_count() >= 1);
    std::vector<kv::Record> recs = {{fresh, "copied"}, {existing, "stale"}, {deleted, "revived?"}};
    std::size_t written = 0;
    CHECK(s.ingest(recs, written, err) == kv::StoreStatus::ok);
    CHECK(written == 1);
    CHECK(s.get(fresh, v, err) == kv::StoreStatus::ok);
    CHECK(v == "copied");
    CHECK(s.get(existing, v, err) == kv::StoreStatus::ok);
    CHECK(v == "v-hundred");  // the newer write wins
    CHECK(s.get(deleted, v, err) == kv::StoreStatus::not_found);  // the delete wins

    // A put after the tombstone is a normal write; a later copy still does not overwrite it.
    CHECK(s.put(deleted, "rewritten", err) == kv::StoreStatus::ok);
    CHECK(s.ingest(recs, written, err) == kv::StoreStatus::ok);
    CHECK(written == 0);
    CHECK(s.get(deleted, v, err) == kv::StoreStatus::ok);
    CHECK(v == "rewritten");

    // Dropping tombstones lets a copy in again.
    const auto h = kv::read_be64(deleted);
    CHECK(s.del(deleted, false, err) == kv::StoreStatus::ok);
    CHECK(s.drop(std::vector<HashRange>{{h, h}}, false, true, err) == kv::StoreStatus::ok);
    CHECK(s.ingest(std::vector<kv::Record>{{deleted, "copied"}}, written, err) == kv::StoreStatus::ok);
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
    CHECK(s->del(k, true, err) == kv::StoreStatus::not_found);
  }
  auto s = kv::open_rocksdb_store({dir.path.string(), false});
  std::size_t written = 0;
  CHECK(s->ingest(std::vector<kv::Record>{{k, "old"}}, written, err) == kv::StoreStatus::ok);
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
    std::size_t written = 0;
    std::string err;
    for (int round = 0; round < 5; ++round) s->ingest(recs, written, err);
    writer.join();
    std::size_t wrong = 0;
    for (const auto& k : keys) {
      std::string v;
      if (s->get(k, v, err) != kv::StoreStatus::ok || v != "new") ++wrong;
    }
    CHECK(wrong == 0);
  }
}
