// The rebalancer's /admin/ endpoints of kvnode's Api, each with its exact status, fields and body.
#include "api_testing.hpp"

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

TEST_CASE("admin: repair sets the pull's bounds, either or both; a 404 on a node without them", "[api][admin]") {
  Node n;
  check_answer(n.call(V::post, "/admin/repair?busy_percent=10"), 404, detail("Not found"));  // no --ring
  kv::RepairRate rate(20, 50'000);
  n.api.set_repair_rate(&rate);
  check_answer(n.call(V::post, "/admin/repair?busy_percent=10"), 200,
               R"({"status":"success","busy_percent":10,"keys_per_second":50000})");
  check_answer(n.call(V::post, "/admin/repair?keys_per_second=0"), 200,
               R"({"status":"success","busy_percent":10,"keys_per_second":0})");
  check_answer(n.call(V::post, "/admin/repair?keys_per_second=4294967295&busy_percent=100"), 200,
               R"({"status":"success","busy_percent":100,"keys_per_second":4294967295})");
  CHECK(rate.busy_percent() == 100);
  CHECK(rate.keys_per_second() == 4294967295u);
  const std::string bad = detail("expected busy_percent=1..100 and/or keys_per_second=0..4294967295 (0: no bound)");
  for (const char* target : {"/admin/repair", "/admin/repair?busy_percent=0", "/admin/repair?busy_percent=101",
                             "/admin/repair?busy_percent=1x", "/admin/repair?busy_percent=-1",
                             "/admin/repair?keys_per_second=4294967296", "/admin/repair?keys_per_second=10&busy_percent=0",
                             "/admin/repair?other=1"}) {
    INFO(target);
    check_answer(n.call(V::post, target), 400, bad);
  }
  CHECK(rate.busy_percent() == 100);  // a refused request sets neither, even where one half was good
  CHECK(rate.keys_per_second() == 4294967295u);
  const auto res = n.call(V::get, "/admin/repair?busy_percent=5");
  check_answer(res, 405, detail("Method not allowed"));
  CHECK(res[http::field::allow] == "POST");
}
