// What survives a reopen, a crash and an upgrade on the RocksDB engine: tags with their values, the
// counter's reservation, the count of tombstones, and data directories of older layouts.
#include "store_testing.hpp"

#include <rocksdb/db.h>

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
