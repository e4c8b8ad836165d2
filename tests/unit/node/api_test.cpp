// kvnode's answers, driven through the Api over the memory store without a socket: every row of the
// client API table (README.md) and the rebalancer's /admin/ endpoints, each with its exact status,
// fields and body. The integration suites check the same answers on the wire; these pin them cheaply.
#include <catch2/catch.hpp>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/storage_key.hpp"
#include "common/replica.hpp"
#include "common/transfer.hpp"
#include "common/version.hpp"
#include "node/api.hpp"
#include "node/store.hpp"

namespace http = boost::beast::http;
using V = http::verb;
using kv::StoreStatus;

namespace {

// The memory store, or one that fails every call (the memory store cannot), or one that claims group
// commit so that writes are handed back to the caller.
class TestStore final : public kv::Store {
 public:
  bool fail = false;
  bool group = false;

  StoreStatus get(std::string_view k, std::string& v, std::string& err) override {
    return fail ? failed(err) : inner_->get(k, v, err);
  }
  StoreStatus get_versioned(std::string_view k, std::string& v, kv::Tag& tag, bool& tomb, std::string& err) override {
    return fail ? failed(err) : inner_->get_versioned(k, v, tag, tomb, err);
  }
  kv::WriteResult write(kv::WriteOp op) override {
    kv::WriteResult r;
    if (fail) r.status = failed(r.err);
    else r = inner_->write(std::move(op));
    return r;
  }
  std::uint64_t key_count() override { return inner_->key_count(); }
  std::string_view engine() const noexcept override { return fail ? "broken" : inner_->engine(); }
  void flush() override {}
  std::string write_error() const override { return fail ? "disk on fire" : std::string(); }
  bool group_commit() const noexcept override { return group; }
  StoreStatus scan(std::span<const kv::HashRange> r, std::string_view after, std::size_t limit, std::size_t max_bytes,
                   bool versioned, kv::ScanBatch& out, std::string& err) override {
    return fail ? failed(err) : inner_->scan(r, after, limit, max_bytes, versioned, out, err);
  }
  StoreStatus measure(std::span<const kv::HashRange> r, Size& out, std::string& err) override {
    return fail ? failed(err) : inner_->measure(r, out, err);
  }
  StoreStatus ingest_records(std::span<const kv::Record> r, std::uint64_t floors_seen, std::size_t& written,
                             std::size_t& conflicts, std::string& err) override {
    return fail ? failed(err) : inner_->ingest(r, written, conflicts, err, floors_seen);
  }
  StoreStatus drop(std::span<const kv::HashRange> r, bool data, bool tombs, std::string& err) override {
    return fail ? failed(err) : inner_->drop(r, data, tombs, err);
  }
  std::uint64_t tombstone_count() override { return inner_->tombstone_count(); }
  std::string meta(std::string_view k) override { return inner_->meta(k); }
  void set_meta(std::string_view k, std::string_view v) override { inner_->set_meta(k, v); }
  void set_metas(std::span<const std::pair<std::string, std::string>> r) override { inner_->set_metas(r); }
  std::vector<std::pair<std::string, std::string>> metas(std::string_view prefix) override { return inner_->metas(prefix); }
  StoreStatus tombstones(std::span<const kv::HashRange> r, std::size_t limit, std::vector<std::pair<std::string, kv::Tag>>& out,
                         std::string& err) override {
    return fail ? failed(err) : inner_->tombstones(r, limit, out, err);
  }
  StoreStatus purge_tombstones(std::span<const std::pair<std::string, kv::Tag>> t, std::size_t& purged, std::string& err) override {
    return fail ? failed(err) : inner_->purge_tombstones(t, purged, err);
  }
  void settle() override { inner_->settle(); }

 private:
  static StoreStatus failed(std::string& err) {
    err = "disk on fire";
    return StoreStatus::error;
  }
  std::unique_ptr<kv::Store> inner_ = kv::open_memory_store();
};

using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Key limit 16 bytes, value limit 32, node id n1.
struct Node {
  TestStore store;
  kv::NodeMetrics metrics;
  kv::Api api{store, metrics, kv::ApiLimits{16, 32}, "n1"};

  kv::http::StringResponse call(V method, std::string_view target, std::string body = {}, Fields fields = {}) {
    kv::http::StringRequest req{method, target, 11};
    for (const auto& [name, value] : fields) req.set(name, value);
    req.body() = std::move(body);
    kv::http::StringResponse res;
    last_route = api.handle(req, res);
    return res;
  }
  kv::Route last_route = kv::Route::other;
};

std::string detail(std::string_view d) { return R"({"status":"error","detail":")" + std::string(d) + "\"}"; }

void check_answer(const kv::http::StringResponse& res, unsigned status, const std::string& body) {
  CHECK(res.result_int() == status);
  CHECK(res.body() == body);
  CHECK(res[http::field::content_type] == "application/json");
}

// A range list holding every hash.
const std::string kEverything = "0000000000000000 ffffffffffffffff\n";

std::string hash_range_of(std::string_view key) {
  const auto h = kv::read_be64(kv::storage_key(key));
  return kv::hex64(h) + " " + kv::hex64(h) + "\n";
}

}  // namespace

// ---- the client API -----------------------------------------------------------------------------

TEST_CASE("api: put, get, overwrite, delete", "[api]") {
  Node n;
  auto res = n.call(V::post, "/put?key=user%2F42", R"({"value": "Gr\u00fc\u00dfe \"q\""})");
  check_answer(res, 200, R"({"status":"success"})");
  CHECK(res["X-KV-Node"] == "n1");
  CHECK(n.last_route == kv::Route::put);

  res = n.call(V::get, "/get?key=user/42");
  check_answer(res, 200, "{\"status\":\"success\",\"value\":\"Gr\xc3\xbc\xc3\x9f" "e \\\"q\\\"\"}");
  CHECK(n.last_route == kv::Route::get);

  check_answer(n.call(V::post, "/put?key=user%2F42", R"({"value":"2"})"), 200, R"({"status":"success"})");
  check_answer(n.call(V::get, "/get?key=user%2F42&key=other"), 200, R"({"status":"success","value":"2"})");

  check_answer(n.call(V::delete_, "/del?key=user%2F42"), 200, R"({"status":"success"})");
  CHECK(n.last_route == kv::Route::del);
  check_answer(n.call(V::delete_, "/del?key=user%2F42"), 404, detail("Key not found"));
  check_answer(n.call(V::get, "/get?key=user%2F42"), 404, detail("Key not found"));
  CHECK(n.store.key_count() == 0);
}

TEST_CASE("api: HEAD goes wherever GET does, with the body GET would send", "[api]") {
  Node n;
  n.call(V::post, "/put?key=a", R"({"value":"x"})");
  check_answer(n.call(V::head, "/get?key=a"), 200, R"({"status":"success","value":"x"})");
  check_answer(n.call(V::head, "/get?key=b"), 404, detail("Key not found"));
  CHECK(n.call(V::head, "/health").result_int() == 200);
  CHECK(n.call(V::head, "/metrics").result_int() == 200);
  // Not where GET is not allowed.
  CHECK(n.call(V::head, "/put?key=a").result_int() == 405);
}

TEST_CASE("api: every bad key gets a 400 (413 when too long) with its detail, on every route", "[api]") {
  Node n;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "Missing key parameter"},
      {"?other=1", "Missing key parameter"},
      {"?key=", "Empty key"},
      {"?key=%zz", "Invalid percent-encoding in key"},
      {"?key=a%01", "Key contains a control character"},
  };
  const std::vector<std::pair<V, std::string>> routes = {{V::post, "/put"}, {V::get, "/get"}, {V::delete_, "/del"}};
  for (const auto& [method, path] : routes) {
    for (const auto& [query, why] : cases) {
      INFO(path << query);
      check_answer(n.call(method, path + query, R"({"value":"v"})"), 400, detail(why));
    }
    // 16 bytes decoded is the limit; "%41" is one byte.
    check_answer(n.call(method, path + "?key=0123456789abcdef0", R"({"value":"v"})"), 413, detail("Key too long"));
    CHECK(n.call(method, path + "?key=%41123456789abcdef", R"({"value":"v"})").result_int() != 413);
  }
}

TEST_CASE("api: bad put bodies get a 400 with the reason; an oversized value 413", "[api]") {
  Node n;
  check_answer(n.call(V::post, "/put?key=a", "{"), 400, detail("Invalid JSON body: incomplete JSON"));
  check_answer(n.call(V::post, "/put?key=a", ""), 400, detail("Invalid JSON body: incomplete JSON"));
  check_answer(n.call(V::post, "/put?key=a", "[]"), 400, detail("Body must be a JSON object with a string field 'value'"));
  check_answer(n.call(V::post, "/put?key=a", R"({"val":"x"})"), 400, detail("Missing field 'value'"));
  check_answer(n.call(V::post, "/put?key=a", R"({"value":7})"), 400, detail("Field 'value' must be a string"));
  check_answer(n.call(V::post, "/put?key=a", R"({"value":null})"), 400, detail("Field 'value' must be a string"));
  const std::string at_limit(32, 'v');
  check_answer(n.call(V::post, "/put?key=a", R"({"value":")" + at_limit + "v\"}"), 413,
               detail("Value too large (limit 32 bytes)"));
  CHECK(n.store.key_count() == 0);
  check_answer(n.call(V::post, "/put?key=a", R"({"value":")" + at_limit + "\"}"), 200, R"({"status":"success"})");
  CHECK(n.store.key_count() == 1);
}

TEST_CASE("api: a wrong method gets 405 with Allow, before the key is looked at", "[api]") {
  Node n;
  const std::vector<std::tuple<V, std::string, std::string>> cases = {
      {V::get, "/put?key=a", "POST"},          {V::put, "/put", "POST"},
      {V::post, "/get?key=a", "GET, HEAD"},    {V::delete_, "/get", "GET, HEAD"},
      {V::get, "/del?key=a", "DELETE"},        {V::post, "/del", "DELETE"},
      {V::post, "/health", "GET, HEAD"},      {V::delete_, "/metrics", "GET, HEAD"},
  };
  for (const auto& [method, target, allow] : cases) {
    INFO(target);
    const auto res = n.call(method, target);
    check_answer(res, 405, detail("Method not allowed"));
    CHECK(res[http::field::allow] == allow);
  }
}

TEST_CASE("api: unknown paths get 404 Not found", "[api]") {
  Node n;
  for (const char* target : {"/", "/nothing", "/get/", "/gets?key=a", "/admin", "/Get?key=a", "/health/x"}) {
    INFO(target);
    check_answer(n.call(V::get, target), 404, detail("Not found"));
    CHECK(n.last_route == kv::Route::other);
  }
}

TEST_CASE("api: the route of a target", "[api]") {
  CHECK(kv::Api::route_of("/put?key=a") == kv::Route::put);
  CHECK(kv::Api::route_of("/get") == kv::Route::get);
  CHECK(kv::Api::route_of("/del?key=a#x") == kv::Route::del);
  CHECK(kv::Api::route_of("/health") == kv::Route::health);
  CHECK(kv::Api::route_of("/metrics?x=1") == kv::Route::metrics);
  CHECK(kv::Api::route_of("/admin/scan?limit=1") == kv::Route::admin);
  CHECK(kv::Api::route_of("/admin/anything") == kv::Route::admin);
  CHECK(kv::Api::route_of("/admin") == kv::Route::other);
  CHECK(kv::Api::route_of("") == kv::Route::other);
}

TEST_CASE("api: /health says the engine and whether writes work", "[api]") {
  Node n;
  auto res = n.call(V::get, "/health");
  check_answer(res, 200, R"({"status":"ok","engine":"memory","writable":true})");
  CHECK(res["X-KV-Node"] == "n1");
  CHECK(n.last_route == kv::Route::health);
  n.store.fail = true;
  check_answer(n.call(V::get, "/health"), 200, R"({"status":"ok","engine":"broken","writable":false,"detail":"disk on fire"})");
}

TEST_CASE("api: /metrics is Prometheus text over the store", "[api]") {
  Node n;
  n.call(V::post, "/put?key=a", R"({"value":"x"})");
  const auto res = n.call(V::get, "/metrics");
  CHECK(res.result_int() == 200);
  CHECK(res[http::field::content_type] == "text/plain; version=0.0.4");
  CHECK(n.last_route == kv::Route::metrics);
  CHECK_THAT(res.body(), Catch::Contains("\nkvnode_keys 1\n"));
  CHECK_THAT(res.body(), Catch::StartsWith("# HELP kvnode_build_info Build information.\n"));
}

TEST_CASE("api: without a node id, no X-KV-Node field", "[api]") {
  TestStore store;
  kv::NodeMetrics metrics;
  kv::Api api(store, metrics, {});
  kv::http::StringRequest req{V::get, "/health", 11};
  kv::http::StringResponse res;
  api.handle(req, res);
  CHECK(res.result_int() == 200);
  CHECK(res.find("X-KV-Node") == res.end());
}

TEST_CASE("api: every delete of a value keeps a tombstone; the old X-KV-Tombstone mark means nothing", "[api][rebalance]") {
  Node n;
  n.call(V::post, "/put?key=a", R"({"value":"x"})");
  n.call(V::post, "/put?key=b", R"({"value":"x"})");
  check_answer(n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Tombstone", "1"}}), 200, R"({"status":"success"})");
  check_answer(n.call(V::delete_, "/del?key=b"), 200, R"({"status":"success"})");
  CHECK(n.store.tombstone_count() == 2);
  // No tombstone for a key that held nothing, marked or not: an untagged delete has nothing to order.
  check_answer(n.call(V::delete_, "/del?key=gone", {}, {{"X-KV-Tombstone", "1"}}), 404, detail("Key not found"));
  CHECK(n.store.tombstone_count() == 2);
}

TEST_CASE("api: storage failures are 500s that say which operation failed, and are counted", "[api]") {
  Node n;
  n.store.fail = true;
  check_answer(n.call(V::get, "/get?key=a"), 500, detail("Storage read failed: disk on fire"));
  check_answer(n.call(V::post, "/put?key=a", R"({"value":"x"})"), 500, detail("Storage write failed: disk on fire"));
  check_answer(n.call(V::delete_, "/del?key=a"), 500, detail("Storage delete failed: disk on fire"));
  // Input errors come first and are not storage errors.
  CHECK(n.call(V::post, "/put?key=a", "{").result_int() == 400);
  CHECK_THAT(n.metrics.render(n.store), Catch::Contains("\nkvnode_store_errors_total 3\n"));
}

TEST_CASE("api: with a group-commit store, valid writes are handed back and finished later", "[api]") {
  Node n;
  std::optional<kv::DeferredWrite> deferred;
  kv::http::StringRequest req{V::post, "/put?key=a", 11};
  req.body() = R"({"value":"x"})";
  kv::http::StringResponse res;

  SECTION("a store without group commit applies the write at once") {
    CHECK(n.api.handle(req, res, &deferred) == kv::Route::put);
    CHECK_FALSE(deferred);
    check_answer(res, 200, R"({"status":"success"})");
    CHECK(n.store.key_count() == 1);
  }

  SECTION("a put") {
    n.store.group = true;
    CHECK(n.api.handle(req, res, &deferred) == kv::Route::put);
    REQUIRE(deferred);
    CHECK(deferred->op.kind == kv::WriteOp::Kind::put);
    CHECK(deferred->op.key == kv::storage_key("a"));
    CHECK(deferred->op.value == "x");
    CHECK_FALSE(deferred->op.tag);
    CHECK_FALSE(deferred->form.versioned);
    CHECK(n.store.key_count() == 0);  // not applied: the caller submits it
    CHECK(res["X-KV-Node"] == "n1");
    n.api.finish_write(deferred->form, {}, res);
    check_answer(res, 200, R"({"status":"success"})");
    CHECK(res.find("X-KV-Version") == res.end());
    n.api.finish_write(deferred->form, {StoreStatus::error, "disk on fire"}, res);
    check_answer(res, 500, detail("Storage write failed: disk on fire"));
    CHECK_THAT(n.metrics.render(n.store), Catch::Contains("\nkvnode_store_errors_total 1\n"));
  }

  SECTION("a tagged delete, answered with its version fields") {
    n.store.group = true;
    kv::http::StringRequest del{V::delete_, "/del?key=a", 11};
    del.set("X-KV-Version", "7.a");
    CHECK(n.api.handle(del, res, &deferred) == kv::Route::del);
    REQUIRE(deferred);
    CHECK(deferred->op.kind == kv::WriteOp::Kind::del);
    CHECK(deferred->op.key == kv::storage_key("a"));
    CHECK(deferred->op.tag == kv::Tag{7, 10});
    CHECK(deferred->form.tag == kv::Tag{7, 10});
    CHECK(deferred->form.versioned);
    kv::WriteResult stored{StoreStatus::not_found, {}, kv::Tag{7, 10}, true, false, true};
    n.api.finish_write(deferred->form, stored, res);
    check_answer(res, 404, detail("Key not found"));
    CHECK(res["X-KV-Version"] == "7.000000000000000a");
    CHECK(res["X-KV-Tombstone"] == "1");
    CHECK(res["X-KV-Applied"] == "1");
    kv::http::StringResponse failed;
    n.api.finish_write(deferred->form, {StoreStatus::error, "gone"}, failed);
    check_answer(failed, 500, detail("Storage delete failed: gone"));
    CHECK(failed.find("X-KV-Version") == failed.end());  // unknown after a failure
  }

  SECTION("an invalid write is answered at once, not handed back") {
    n.store.group = true;
    req.body() = "{";
    n.api.handle(req, res, &deferred);
    CHECK_FALSE(deferred);
    CHECK(res.result_int() == 400);
  }

  SECTION("reads are never handed back") {
    n.store.group = true;
    kv::http::StringRequest get{V::get, "/get?key=a", 11};
    n.api.handle(get, res, &deferred);
    CHECK_FALSE(deferred);
    CHECK(res.result_int() == 404);
  }
}

// ---- the rebalancer's /admin/ endpoints -----------------------------------------------------------

namespace {

std::string records(std::initializer_list<std::pair<std::string, std::string>> kvs) {
  std::string out;
  for (const auto& [k, v] : kvs) kv::append_record(out, kv::storage_key(k), v);
  return out;
}

// The stored keys of a scan answer's records.
std::vector<std::string> scanned_keys(const kv::http::StringResponse& res) {
  std::vector<kv::Record> recs;
  std::string err;
  REQUIRE(kv::parse_records(res.body(), recs, err));
  std::vector<std::string> keys;
  for (const auto& r : recs) keys.emplace_back(r.key);
  return keys;
}

}  // namespace

TEST_CASE("admin: ingest copies keys that have neither a value nor a tombstone", "[api][admin]") {
  Node n;
  n.call(V::post, "/put?key=b", R"({"value":"newer"})");
  n.call(V::delete_, "/del?key=c", {}, {{"X-KV-Version", "1.1"}});  // a tombstone where nothing was
  const auto body = records({{"a", "1"}, {"b", "older"}, {"c", "deleted"}});
  auto res = n.call(V::post, "/admin/ingest", body);
  check_answer(res, 200, R"({"status":"success","written":1,"skipped":2,"conflicts":0})");
  CHECK(res["X-KV-Node"] == "n1");
  CHECK(n.last_route == kv::Route::admin);
  check_answer(n.call(V::get, "/get?key=a"), 200, R"({"status":"success","value":"1"})");
  check_answer(n.call(V::get, "/get?key=b"), 200, R"({"status":"success","value":"newer"})");
  check_answer(n.call(V::get, "/get?key=c"), 404, detail("Key not found"));
  check_answer(n.call(V::post, "/admin/ingest", body), 200, R"({"status":"success","written":0,"skipped":3,"conflicts":0})");
  check_answer(n.call(V::post, "/admin/ingest", ""), 200, R"({"status":"success","written":0,"skipped":0,"conflicts":0})");
}

TEST_CASE("admin: ingest refuses malformed records and keys under the wrong hash, storing none", "[api][admin]") {
  Node n;
  check_answer(n.call(V::post, "/admin/ingest", std::string("\0\0\0\x09" "abc", 7)), 400,
               detail("records: entry 1: truncated key"));
  std::string body = records({{"a", "1"}});
  kv::append_record(body, std::string(8, '\0') + "k", "v");
  check_answer(n.call(V::post, "/admin/ingest", body), 400, detail("records: entry 2: hash prefix does not match the key"));
  CHECK(n.store.key_count() == 0);
}

TEST_CASE("admin: count", "[api][admin]") {
  Node n;
  for (const char* k : {"a", "b", "c"}) n.call(V::post, std::string("/put?key=") + k, R"({"value":"v"})");
  // Bytes as stored: the 8-byte hash and the key, and the value.
  check_answer(n.call(V::post, "/admin/count", kEverything), 200, R"({"status":"success","keys":3,"bytes":30})");
  check_answer(n.call(V::post, "/admin/count", hash_range_of("b")), 200, R"({"status":"success","keys":1,"bytes":10})");
  check_answer(n.call(V::post, "/admin/count", ""), 200, R"({"status":"success","keys":0,"bytes":0})");
}

TEST_CASE("admin: scan returns records in batches, resumed from the cursor", "[api][admin]") {
  Node n;
  std::vector<std::string> stored;
  for (const char* k : {"a", "b", "c"}) {
    n.call(V::post, std::string("/put?key=") + k, R"({"value":"v"})");
    stored.push_back(kv::storage_key(k));
  }
  std::sort(stored.begin(), stored.end());

  std::vector<std::string> got;
  std::string after;
  for (int batch = 0; batch < 3; ++batch) {
    const auto res = n.call(V::post, "/admin/scan?limit=1" + (after.empty() ? "" : "&after=" + after), kEverything);
    REQUIRE(res.result_int() == 200);
    CHECK(res[http::field::content_type] == "application/octet-stream");
    CHECK(res["X-KV-Scan-Count"] == "1");
    const auto keys = scanned_keys(res);
    REQUIRE(keys.size() == 1);
    CHECK(keys[0] == stored[static_cast<std::size_t>(batch)]);
    CHECK(res["X-KV-Scan-Cursor"] == kv::hex_bytes(keys[0]));
    // The last batch stops at the end of the range: it knows it is done.
    CHECK(res["X-KV-Scan-Done"] == (batch == 2 ? "1" : "0"));
    got.push_back(keys[0]);
    after = std::string(res["X-KV-Scan-Cursor"]);
  }
  CHECK(got == stored);

  // All at once, by default; max_bytes=1 still returns one record.
  auto res = n.call(V::post, "/admin/scan", kEverything);
  CHECK(scanned_keys(res) == stored);
  CHECK(res["X-KV-Scan-Count"] == "3");
  CHECK(res["X-KV-Scan-Done"] == "1");
  res = n.call(V::post, "/admin/scan?max_bytes=1&limit=100000", kEverything);
  CHECK(res["X-KV-Scan-Count"] == "1");
  CHECK(res["X-KV-Scan-Done"] == "0");

  // Nothing past the last key: no cursor.
  res = n.call(V::post, "/admin/scan?after=" + kv::hex_bytes(stored.back()), kEverything);
  CHECK(res.result_int() == 200);
  CHECK(res.body().empty());
  CHECK(res["X-KV-Scan-Count"] == "0");
  CHECK(res["X-KV-Scan-Done"] == "1");
  CHECK(res.find("X-KV-Scan-Cursor") == res.end());
}

TEST_CASE("admin: drop data, tombstones or both in the ranges", "[api][admin]") {
  Node n;
  auto setup = [&] {
    n.call(V::post, "/put?key=a", R"({"value":"v"})");
    n.call(V::post, "/put?key=b", R"({"value":"v"})");
    n.call(V::delete_, "/del?key=t", {}, {{"X-KV-Version", "1.1"}});
  };
  setup();
  check_answer(n.call(V::post, "/admin/drop?what=data", hash_range_of("a")), 200, R"({"status":"success"})");
  CHECK(n.call(V::get, "/get?key=a").result_int() == 404);
  CHECK(n.call(V::get, "/get?key=b").result_int() == 200);
  CHECK(n.store.tombstone_count() == 1);

  check_answer(n.call(V::post, "/admin/drop?what=tombstones", kEverything), 200, R"({"status":"success"})");
  CHECK(n.store.tombstone_count() == 0);
  CHECK(n.store.key_count() == 1);

  setup();
  check_answer(n.call(V::post, "/admin/drop?what=all", kEverything), 200, R"({"status":"success"})");
  CHECK(n.store.tombstone_count() == 0);
  CHECK(n.store.key_count() == 0);
}

TEST_CASE("admin: bad parameters get exact 400s", "[api][admin]") {
  Node n;
  const std::string bad_ranges = R"(ranges: line 1: expected \"LO HI\" as two 16-digit hex numbers)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/admin/scan", bad_ranges},
      {"/admin/count", bad_ranges},
      {"/admin/drop?what=all", bad_ranges},
  };
  for (const auto& [target, why] : cases) {
    INFO(target);
    check_answer(n.call(V::post, target, "0 1\n"), 400, detail(why));
  }
  check_answer(n.call(V::post, "/admin/count", "0000000000000002 0000000000000001\n"), 400,
               detail("ranges: line 1: LO is above HI"));
  const std::vector<std::pair<std::string, std::string>> params = {
      {"/admin/drop", "what: expected data, tombstones or all"},
      {"/admin/drop?what=everything", "what: expected data, tombstones or all"},
      {"/admin/drop?what=Data", "what: expected data, tombstones or all"},
      {"/admin/scan?limit=0", "limit: expected 1..100000"},
      {"/admin/scan?limit=100001", "limit: expected 1..100000"},
      {"/admin/scan?limit=-1", "limit: expected 1..100000"},
      {"/admin/scan?limit=1x", "limit: expected 1..100000"},
      {"/admin/scan?max_bytes=0", "max_bytes: expected 1..33554432"},
      {"/admin/scan?max_bytes=33554433", "max_bytes: expected 1..33554432"},
      {"/admin/scan?after=xyz", "after: expected a stored key in hex (at least 16 digits)"},
      {"/admin/scan?after=abc", "after: expected a stored key in hex (at least 16 digits)"},
      {"/admin/scan?after=00000000000000", "after: expected a stored key in hex (at least 16 digits)"},
      {"/admin/scan?versions=0", "versions: expected 1"},
      {"/admin/scan?versions=true", "versions: expected 1"},
      {"/admin/ingest?versions=2", "versions: expected 1"},
  };
  for (const auto& [target, why] : params) {
    INFO(target);
    check_answer(n.call(V::post, target, kEverything), 400, detail(why));
  }
  // The bounds themselves are fine.
  CHECK(n.call(V::post, "/admin/scan?limit=100000&max_bytes=33554432&after=0000000000000000", kEverything).result_int() ==
        200);
}

TEST_CASE("admin: unknown endpoints 404, other methods 405", "[api][admin]") {
  Node n;
  for (const char* target : {"/admin/", "/admin/nothing", "/admin/scan/x", "/admin/migration"}) {
    INFO(target);
    check_answer(n.call(V::post, target), 404, detail("Not found"));
  }
  for (const char* target : {"/admin/scan", "/admin/count", "/admin/ingest", "/admin/drop?what=all"}) {
    INFO(target);
    const auto res = n.call(V::get, target);
    check_answer(res, 405, detail("Method not allowed"));
    CHECK(res[http::field::allow] == "POST");
  }
}

TEST_CASE("admin: with a token, every /admin/ request needs it; client routes do not", "[api][admin]") {
  Node n;
  const std::string token = "0123456789abcdef-token";
  n.api.set_admin_token(token);
  const std::string bearer = "Bearer " + token;

  auto res = n.call(V::post, "/admin/count", kEverything);
  check_answer(res, 401, detail("This endpoint needs Authorization: Bearer <token>"));
  CHECK(res[http::field::www_authenticate] == R"(Bearer realm="kvnode admin")");
  // Before anything else: an unknown endpoint or a wrong method says nothing without the token.
  CHECK(n.call(V::post, "/admin/nothing").result_int() == 401);
  CHECK(n.call(V::get, "/admin/scan").result_int() == 401);

  res = n.call(V::post, "/admin/count", kEverything, {{"Authorization", "Bearer 0123456789abcdef-tokem"}});
  check_answer(res, 403, detail("Wrong token"));
  CHECK(res.find(http::field::www_authenticate) == res.end());
  CHECK(n.call(V::post, "/admin/count", kEverything, {{"Authorization", token}}).result_int() == 403);

  check_answer(n.call(V::post, "/admin/count", kEverything, {{"Authorization", bearer}}), 200,
               R"({"status":"success","keys":0,"bytes":0})");
  check_answer(n.call(V::post, "/admin/nothing", {}, {{"Authorization", bearer}}), 404, detail("Not found"));
  CHECK(n.call(V::post, "/put?key=a", R"({"value":"v"})").result_int() == 200);
}

TEST_CASE("admin: storage failures are 500s that name the operation", "[api][admin]") {
  Node n;
  n.store.fail = true;
  check_answer(n.call(V::post, "/admin/ingest", records({{"a", "1"}})), 500, detail("Storage ingest failed: disk on fire"));
  check_answer(n.call(V::post, "/admin/count", kEverything), 500, detail("Storage scan failed: disk on fire"));
  check_answer(n.call(V::post, "/admin/scan", kEverything), 500, detail("Storage scan failed: disk on fire"));
  check_answer(n.call(V::post, "/admin/drop?what=all", kEverything), 500, detail("Storage drop failed: disk on fire"));
  CHECK_THAT(n.metrics.render(n.store), Catch::Contains("\nkvnode_store_errors_total 4\n"));
}

// ---- per-key versions (common/version.hpp): the node-to-node fields ----------------------------

namespace {

const char* const kVersionFields[] = {"X-KV-Version", "X-KV-Applied", "X-KV-Tombstone"};

void check_plain(const kv::http::StringResponse& res) {
  for (const char* f : kVersionFields) {
    INFO(f);
    CHECK(res.find(f) == res.end());
  }
}

// The version fields of an answer: X-KV-Version, X-KV-Tombstone, X-KV-Applied ("-" when absent).
std::vector<std::string> fields_of(const kv::http::StringResponse& res) {
  std::vector<std::string> out;
  for (const char* f : {"X-KV-Version", "X-KV-Tombstone", "X-KV-Applied"})
    out.push_back(res.find(f) == res.end() ? "-" : std::string(res[f]));
  return out;
}
using Fs = std::vector<std::string>;

const std::string kT5 = "5.0000000000000001";  // the tag 5.1 as a node writes it

}  // namespace

TEST_CASE("api: plain requests get plain answers, without a version field", "[api][versions]") {
  Node n;
  auto res = n.call(V::post, "/put?key=a", R"({"value":"x"})");
  check_answer(res, 200, R"({"status":"success"})");
  check_plain(res);
  res = n.call(V::get, "/get?key=a");
  check_answer(res, 200, R"({"status":"success","value":"x"})");
  check_plain(res);
  res = n.call(V::delete_, "/del?key=a");
  check_answer(res, 200, R"({"status":"success"})");
  check_plain(res);
  res = n.call(V::get, "/get?key=a");
  check_answer(res, 404, detail("Key not found"));
  check_plain(res);
  res = n.call(V::delete_, "/del?key=a");
  check_answer(res, 404, detail("Key not found"));
  check_plain(res);
  // X-KV-Versioned other than 1 asks for nothing.
  res = n.call(V::get, "/get?key=a", {}, {{"X-KV-Versioned", "0"}});
  check_plain(res);
  // Exactly the fields a plain answer had before versions: Content-Type and X-KV-Node.
  res = n.call(V::post, "/put?key=b", R"({"value":"x"})");
  std::vector<std::string> names;
  for (const auto& f : res) names.emplace_back(f.name_string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"Content-Type", "X-KV-Node"});
}

TEST_CASE("api: a versioned GET says the tag held, and whether it is a tombstone", "[api][versions]") {
  Node n;
  const Fields versioned = {{"X-KV-Versioned", "1"}};
  auto res = n.call(V::get, "/get?key=a", {}, versioned);
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"0.0", "-", "-"});

  n.call(V::post, "/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "5.1"}});
  res = n.call(V::get, "/get?key=a", {}, versioned);
  check_answer(res, 200, R"({"status":"success","value":"x"})");
  CHECK(fields_of(res) == Fs{kT5, "-", "-"});
  res = n.call(V::head, "/get?key=a", {}, versioned);
  CHECK(res.result_int() == 200);
  CHECK(res["X-KV-Version"] == kT5);

  n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Version", "6.1"}});
  res = n.call(V::get, "/get?key=a", {}, versioned);
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"6.0000000000000001", "1", "-"});
  // A plain GET of the same key: the same 404 as ever.
  res = n.call(V::get, "/get?key=a");
  check_answer(res, 404, detail("Key not found"));
  check_plain(res);

  n.store.fail = true;
  res = n.call(V::get, "/get?key=a", {}, versioned);
  check_answer(res, 500, detail("Storage read failed: disk on fire"));
  check_plain(res);
}

TEST_CASE("api: tagged writes answer what the key holds after them, and whether they were applied", "[api][versions]") {
  Node n;
  const std::string ok = R"({"status":"success"})";
  auto res = n.call(V::post, "/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "5.1"}});
  check_answer(res, 200, ok);
  CHECK(fields_of(res) == Fs{kT5, "-", "1"});
  // Older, or the same write again: success, superseded.
  res = n.call(V::post, "/put?key=a", R"({"value":"old"})", {{"X-KV-Version", "4.ffff"}});
  check_answer(res, 200, ok);
  CHECK(fields_of(res) == Fs{kT5, "-", "0"});
  res = n.call(V::post, "/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "5.1"}});
  check_answer(res, 200, ok);
  CHECK(fields_of(res) == Fs{kT5, "-", "0"});
  check_answer(n.call(V::get, "/get?key=a"), 200, R"({"status":"success","value":"x"})");

  // A delete answers 200 when the key held a value before it, 404 otherwise, applied or not.
  res = n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Version", "6.1"}});
  check_answer(res, 200, ok);
  CHECK(fields_of(res) == Fs{"6.0000000000000001", "1", "1"});
  res = n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Version", "7.1"}});
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"7.0000000000000001", "1", "1"});
  res = n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Version", "2.1"}});
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"7.0000000000000001", "1", "0"});
  // An older put after the delete: superseded, and the key stays deleted.
  res = n.call(V::post, "/put?key=a", R"({"value":"late"})", {{"X-KV-Version", "6.9"}});
  check_answer(res, 200, ok);
  CHECK(fields_of(res) == Fs{"7.0000000000000001", "1", "0"});
  check_answer(n.call(V::get, "/get?key=a"), 404, detail("Key not found"));
  // A tagged delete of a key that never held anything keeps a tombstone.
  res = n.call(V::delete_, "/del?key=never", {}, {{"X-KV-Version", "1.1"}});
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"1.0000000000000001", "1", "1"});

  // Untagged, versioned: the tag the node made, no X-KV-Applied.
  res = n.call(V::post, "/put?key=a", R"({"value":"y"})", {{"X-KV-Versioned", "1"}});
  check_answer(res, 200, ok);
  REQUIRE(fields_of(res)[1] == "-");
  CHECK(fields_of(res)[2] == "-");
  const auto made = kv::parse_tag(std::string(res["X-KV-Version"]));
  REQUIRE(made);
  CHECK(made->counter == 8);
  res = n.call(V::delete_, "/del?key=b", {}, {{"X-KV-Versioned", "1"}});
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"0.0", "-", "-"});

  const auto text = n.metrics.render(n.store);
  CHECK_THAT(text, Catch::Contains("\nkvnode_writes_superseded_total 4\n"));
  CHECK_THAT(text, Catch::Contains("\nkvnode_version_conflicts_total 0\n"));
}

TEST_CASE("api: a malformed X-KV-Version is a 400, and nothing is stored", "[api][versions]") {
  Node n;
  const std::string why = detail("X-KV-Version: expected <counter>.<writer in hex>");
  for (const char* bad : {"", "5", "x.1", "5.", "5.1.1", "5.00000000000000001", "4611686018427387905.1", "-1.1"}) {
    INFO("'" << bad << "'");
    auto res = n.call(V::post, "/put?key=a", R"({"value":"x"})", {{"X-KV-Version", bad}});
    check_answer(res, 400, why);
    check_plain(res);
    check_answer(n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Version", bad}}), 400, why);
  }
  CHECK(n.store.key_count() == 0);
  CHECK(n.store.tombstone_count() == 0);
  // The largest counter is fine.
  CHECK(n.call(V::post, "/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "4611686018427387904.1"}}).result_int() == 200);
}

TEST_CASE("api: one tag with another value or kind is a 409, counted", "[api][versions]") {
  Node n;
  n.call(V::post, "/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "5.1"}});
  const std::string why = detail("version " + kT5 + " already holds another value");
  auto res = n.call(V::post, "/put?key=a", R"({"value":"y"})", {{"X-KV-Version", "5.1"}});
  check_answer(res, 409, why);
  CHECK(fields_of(res) == Fs{kT5, "-", "0"});
  res = n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Version", "5.1"}});
  check_answer(res, 409, why);
  check_answer(n.call(V::get, "/get?key=a"), 200, R"({"status":"success","value":"x"})");
  const auto text = n.metrics.render(n.store);
  CHECK_THAT(text, Catch::Contains("\nkvnode_version_conflicts_total 2\n"));
  CHECK_THAT(text, Catch::Contains("\nkvnode_writes_superseded_total 0\n"));
}

TEST_CASE("admin: versions=1 scans values and tombstones with their tags, and ingests newer-wins", "[api][admin][versions]") {
  Node n;
  n.call(V::post, "/put?key=a", R"({"value":"va"})", {{"X-KV-Version", "5.1"}});
  n.call(V::delete_, "/del?key=t", {}, {{"X-KV-Version", "3.2"}});

  auto res = n.call(V::post, "/admin/scan", kEverything);
  CHECK(scanned_keys(res) == std::vector<std::string>{kv::storage_key("a")});
  res = n.call(V::post, "/admin/scan?versions=1", kEverything);
  REQUIRE(res.result_int() == 200);
  CHECK(res["X-KV-Scan-Count"] == "2");
  std::vector<kv::Record> recs;
  std::string err;
  REQUIRE(kv::parse_records(res.body(), recs, err, true));
  REQUIRE(recs.size() == 2);
  std::sort(recs.begin(), recs.end(), [](const kv::Record& x, const kv::Record& y) { return x.tombstone < y.tombstone; });
  CHECK((recs[0].key == kv::storage_key("a") && recs[0].value == "va" && recs[0].tag == kv::Tag{5, 1}));
  CHECK((recs[1].key == kv::storage_key("t") && recs[1].tombstone && recs[1].tag == kv::Tag{3, 2}));

  // Into another node: everything, tags and tombstones; then newer wins.
  Node other;
  other.call(V::post, "/put?key=t", R"({"value":"older than the delete"})", {{"X-KV-Version", "2.9"}});
  check_answer(other.call(V::post, "/admin/ingest?versions=1", res.body()), 200,
               R"({"status":"success","written":2,"skipped":0,"conflicts":0})");
  auto got = other.call(V::get, "/get?key=t", {}, {{"X-KV-Versioned", "1"}});
  CHECK(got.result_int() == 404);
  CHECK(fields_of(got) == Fs{"3.0000000000000002", "1", "-"});
  CHECK(fields_of(other.call(V::get, "/get?key=a", {}, {{"X-KV-Versioned", "1"}}))[0] == kT5);

  std::string body;
  kv::append_versioned_record(body, {kv::storage_key("a"), "va", {5, 1}, false});     // the same: skipped
  kv::append_versioned_record(body, {kv::storage_key("a"), "other", {5, 1}, false});  // one tag, two values
  kv::append_versioned_record(body, {kv::storage_key("a"), {}, {9, 1}, true});         // newer: written
  check_answer(other.call(V::post, "/admin/ingest?versions=1", body), 200,
               R"({"status":"success","written":1,"skipped":1,"conflicts":1})");
  const auto text = other.metrics.render(other.store);
  CHECK_THAT(text, Catch::Contains("\nkvnode_version_conflicts_total 1\n"));
  CHECK_THAT(text, Catch::Contains("\nkvnode_writes_superseded_total 1\n"));
  // Versioned records are refused as plain ones (and the other way round), whole.
  CHECK(other.call(V::post, "/admin/ingest", body).result_int() == 400);
  CHECK(other.call(V::post, "/admin/ingest?versions=1", records({{"z", "1"}})).result_int() == 400);
}

// ---- the replica endpoints (common/replica.hpp) ---------------------------------------------------

TEST_CASE("replica: always versioned, writes only with their tag, HEAD for the tag alone", "[api][replica]") {
  Node n;
  const std::string ok = R"({"status":"success"})";
  // Nothing yet: 404 with the empty tag.
  auto res = n.call(V::get, "/replica/get?key=a");
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"0.0", "-", "-"});
  CHECK(n.last_route == kv::Route::replica);

  // A write without a tag, or with the empty one, is refused and stores nothing.
  for (const Fields& fields : {Fields{}, Fields{{"X-KV-Version", "0.0"}}}) {
    check_answer(n.call(V::post, "/replica/put?key=a", R"({"value":"x"})", fields), 400, detail(kv::replica::kTagRequired));
    check_answer(n.call(V::delete_, "/replica/del?key=a", {}, fields), 400, detail(kv::replica::kTagRequired));
  }
  check_answer(n.call(V::get, "/get?key=a"), 404, detail("Key not found"));

  res = n.call(V::post, "/replica/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "5.1"}});
  check_answer(res, 200, ok);
  CHECK(fields_of(res) == Fs{kT5, "-", "1"});
  res = n.call(V::post, "/replica/put?key=a", R"({"value":"old"})", {{"X-KV-Version", "4.1"}});
  CHECK(fields_of(res) == Fs{kT5, "-", "0"});  // superseded
  res = n.call(V::get, "/replica/get?key=a");
  check_answer(res, 200, R"({"status":"success","value":"x"})");
  CHECK(fields_of(res) == Fs{kT5, "-", "-"});
  res = n.call(V::head, "/replica/get?key=a");
  CHECK(res.result_int() == 200);
  CHECK(fields_of(res) == Fs{kT5, "-", "-"});
  check_answer(n.call(V::post, "/replica/put?key=a", R"({"value":"y"})", {{"X-KV-Version", "5.1"}}), 409,
               detail("version 5.0000000000000001 already holds another value"));

  res = n.call(V::delete_, "/replica/del?key=a", {}, {{"X-KV-Version", "6.1"}});
  check_answer(res, 200, ok);
  res = n.call(V::get, "/replica/get?key=a");
  check_answer(res, 404, detail("Key not found"));
  CHECK(fields_of(res) == Fs{"6.0000000000000001", "1", "-"});
  // The client API sees the same key.
  check_answer(n.call(V::get, "/get?key=a"), 404, detail("Key not found"));

  // Methods, paths and keys as on the client API.
  CHECK(n.call(V::get, "/replica/put?key=a").result_int() == 405);
  CHECK(n.call(V::post, "/replica/get?key=a").result_int() == 405);
  check_answer(n.call(V::get, "/replica/other?key=a"), 404, detail("Not found"));
  CHECK(n.call(V::get, "/replica/get").result_int() == 400);
}

TEST_CASE("replica: with a token, every /replica/ request needs it", "[api][replica]") {
  Node n;
  const std::string token = "0123456789abcdef-token";
  n.api.set_admin_token(token);
  check_answer(n.call(V::get, "/replica/get?key=a"), 401, detail("This endpoint needs Authorization: Bearer <token>"));
  check_answer(n.call(V::post, "/replica/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "1.1"}, {"Authorization", "Bearer nope-nope-nope-nope"}}),
               403, detail("Wrong token"));
  check_answer(n.call(V::get, "/get?key=a"), 404, detail("Key not found"));  // nothing was stored
  CHECK(n.call(V::post, "/replica/put?key=a", R"({"value":"x"})", {{"X-KV-Version", "1.1"}, {"Authorization", "Bearer " + token}})
            .result_int() == 200);
}
