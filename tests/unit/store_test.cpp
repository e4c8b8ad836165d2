#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "storage_key.hpp"
#include "store.hpp"

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
