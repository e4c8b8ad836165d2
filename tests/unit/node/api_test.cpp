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
#include "common/transfer.hpp"
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
  StoreStatus put(std::string_view k, std::string_view v, std::string& err) override {
    return fail ? failed(err) : inner_->put(k, v, err);
  }
  StoreStatus del(std::string_view k, bool tomb, std::string& err) override {
    return fail ? failed(err) : inner_->del(k, tomb, err);
  }
  std::uint64_t key_count() override { return inner_->key_count(); }
  std::string_view engine() const noexcept override { return fail ? "broken" : inner_->engine(); }
  void flush() override {}
  std::string write_error() const override { return fail ? "disk on fire" : std::string(); }
  bool group_commit() const noexcept override { return group; }
  StoreStatus scan(std::span<const kv::HashRange> r, std::string_view after, std::size_t limit, std::size_t max_bytes,
                   kv::ScanBatch& out, std::string& err) override {
    return fail ? failed(err) : inner_->scan(r, after, limit, max_bytes, out, err);
  }
  StoreStatus count(std::span<const kv::HashRange> r, std::uint64_t& n, std::string& err) override {
    return fail ? failed(err) : inner_->count(r, n, err);
  }
  StoreStatus ingest(std::span<const kv::Record> r, std::size_t& written, std::string& err) override {
    return fail ? failed(err) : inner_->ingest(r, written, err);
  }
  StoreStatus drop(std::span<const kv::HashRange> r, bool data, bool tombs, std::string& err) override {
    return fail ? failed(err) : inner_->drop(r, data, tombs, err);
  }
  std::uint64_t tombstone_count() override { return inner_->tombstone_count(); }

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

TEST_CASE("api: a delete marked by a proxy leaves a tombstone, present key or not", "[api][rebalance]") {
  Node n;
  n.call(V::post, "/put?key=a", R"({"value":"x"})");
  check_answer(n.call(V::delete_, "/del?key=a", {}, {{"X-KV-Tombstone", "1"}}), 200, R"({"status":"success"})");
  check_answer(n.call(V::delete_, "/del?key=gone", {}, {{"X-KV-Tombstone", "1"}}), 404, detail("Key not found"));
  CHECK(n.store.tombstone_count() == 2);
  // Any other value is no mark.
  n.call(V::delete_, "/del?key=b", {}, {{"X-KV-Tombstone", "yes"}});
  n.call(V::delete_, "/del?key=c");
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
  std::optional<kv::WriteOp> deferred;
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
    CHECK(deferred->kind == kv::WriteOp::Kind::put);
    CHECK(deferred->key == kv::storage_key("a"));
    CHECK(deferred->value == "x");
    CHECK(n.store.key_count() == 0);  // not applied: the caller submits it
    CHECK(res["X-KV-Node"] == "n1");
    n.api.finish_write(deferred->kind, {}, res);
    check_answer(res, 200, R"({"status":"success"})");
    n.api.finish_write(deferred->kind, {StoreStatus::error, "disk on fire"}, res);
    check_answer(res, 500, detail("Storage write failed: disk on fire"));
    CHECK_THAT(n.metrics.render(n.store), Catch::Contains("\nkvnode_store_errors_total 1\n"));
  }

  SECTION("a delete, with its tombstone mark") {
    n.store.group = true;
    kv::http::StringRequest del{V::delete_, "/del?key=a", 11};
    del.set("X-KV-Tombstone", "1");
    CHECK(n.api.handle(del, res, &deferred) == kv::Route::del);
    REQUIRE(deferred);
    CHECK(deferred->kind == kv::WriteOp::Kind::del);
    CHECK(deferred->key == kv::storage_key("a"));
    CHECK(deferred->tombstone);
    n.api.finish_write(deferred->kind, {StoreStatus::not_found, {}}, res);
    check_answer(res, 404, detail("Key not found"));
    n.api.finish_write(deferred->kind, {StoreStatus::error, "gone"}, res);
    check_answer(res, 500, detail("Storage delete failed: gone"));
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
  n.call(V::delete_, "/del?key=c", {}, {{"X-KV-Tombstone", "1"}});
  const auto body = records({{"a", "1"}, {"b", "older"}, {"c", "deleted"}});
  auto res = n.call(V::post, "/admin/ingest", body);
  check_answer(res, 200, R"({"status":"success","written":1,"skipped":2})");
  CHECK(res["X-KV-Node"] == "n1");
  CHECK(n.last_route == kv::Route::admin);
  check_answer(n.call(V::get, "/get?key=a"), 200, R"({"status":"success","value":"1"})");
  check_answer(n.call(V::get, "/get?key=b"), 200, R"({"status":"success","value":"newer"})");
  check_answer(n.call(V::get, "/get?key=c"), 404, detail("Key not found"));
  check_answer(n.call(V::post, "/admin/ingest", body), 200, R"({"status":"success","written":0,"skipped":3})");
  check_answer(n.call(V::post, "/admin/ingest", ""), 200, R"({"status":"success","written":0,"skipped":0})");
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
  check_answer(n.call(V::post, "/admin/count", kEverything), 200, R"({"status":"success","keys":3})");
  check_answer(n.call(V::post, "/admin/count", hash_range_of("b")), 200, R"({"status":"success","keys":1})");
  check_answer(n.call(V::post, "/admin/count", ""), 200, R"({"status":"success","keys":0})");
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
    n.call(V::delete_, "/del?key=t", {}, {{"X-KV-Tombstone", "1"}});
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
               R"({"status":"success","keys":0})");
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
