// Per-key versions in kvnode's Api: the node-to-node fields, versioned scans and ingests, and the
// /replica/ endpoints, each with its exact status, fields and body.
#include "api_testing.hpp"

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
