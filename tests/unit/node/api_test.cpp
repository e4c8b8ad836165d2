// kvnode's answers, driven through the Api over the memory store without a socket: every row of the
// client API table (README.md), each with its exact status, fields and body. The integration suites check
// the same answers on the wire; these pin them cheaply. The rebalancer's /admin/ endpoints:
// admin_api_test.cpp; the version fields and the /replica/ endpoints: api_versions_test.cpp.
#include "api_testing.hpp"

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
