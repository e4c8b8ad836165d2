// Per-key versions (common/version.hpp) on every engine: which write goes in, what a versioned read and
// scan return, what drops remove, how tombstones and the puts that do not read them meet, and concurrent
// writers of one key.
#include "store_testing.hpp"

#include <atomic>
#include <deque>
#include <map>
#include <span>
#include <tuple>
#include <random>
#include <thread>

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

TEST_CASE("versions: a large versioned ingest ends as its records ingested one at a time would", "[store][versions]") {
  // RocksDB ingests in chunks, each one WriteBatch; the memory engine, and a record at a time, are
  // the reference. Keys repeat within and across chunks, tags collide (conflicts), tombstones and
  // plain records mix, and some keys held something before.
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name), reference("memory");
  std::mt19937_64 rng(42);
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back(kv::storage_key("k" + std::to_string(i)));
  for (int i = 0; i < 100; ++i) {
    const auto& k = keys[rng() % keys.size()];
    const Tag tag{rng() % 40 + 1, rng() % 3};
    const K kind = rng() % 3 ? K::put : K::del;
    const std::string value = kind == K::put ? "held" + kv::format_tag(tag) : "";
    CHECK(tagged(*e.store, kind, k, tag, value).status == tagged(*reference.store, kind, k, tag, value).status);
  }
  std::vector<kv::Record> records;
  std::deque<std::string> values;  // records view their values
  for (int i = 0; i < 2000; ++i) {
    const auto& k = keys[rng() % keys.size()];
    const Tag tag{rng() % 40 + 1, rng() % 3};  // few tags: equal ones meet, with another value at times
    switch (rng() % 5) {
      case 0: records.push_back({k, {}, tag, true}); break;
      case 1: records.push_back({k, values.emplace_back("plain" + std::to_string(i % 2))}); break;
      default:
        records.push_back({k, values.emplace_back("v" + std::to_string(tag.counter) + "." + std::to_string(rng() % 2)), tag, false});
    }
  }
  std::size_t written = 0, conflicts = 0, want_written = 0, want_conflicts = 0;
  std::string err;
  REQUIRE(e.store->ingest(records, written, conflicts, err) == StoreStatus::ok);
  for (const auto& r : records) {
    std::size_t w = 0, c = 0;
    REQUIRE(reference.store->ingest(std::span(&r, 1), w, c, err) == StoreStatus::ok);
    want_written += w;
    want_conflicts += c;
  }
  CHECK(written == want_written);
  CHECK(conflicts == want_conflicts);
  CHECK(conflicts > 0);
  for (const auto& k : keys) CHECK(seen(*e.store, k) == seen(*reference.store, k));
  CHECK(e.store->tombstone_count() == reference.store->tombstone_count());
}

TEST_CASE("versions: a large ingest and tagged writes of the same keys at once end with the newest tags", "[store][versions]") {
  // An ingest holds the stripes of each chunk's keys while it reads and writes them. Tags come from
  // one clock, each taken just before its write or its batch, so the key's newest is always the
  // latest taken: a client's write that came between an ingest's read and its write of a key, and
  // was then overwritten by the older record, would show as a key not ending on its newest tag.
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  std::vector<std::string> keys;
  for (int i = 0; i < 4; ++i) keys.push_back(kv::storage_key("c" + std::to_string(i)));
  std::atomic<std::uint64_t> clock{0};
  std::atomic<bool> ingesting{true};
  std::atomic<int> errors{0};
  using Newest = std::map<std::string, std::pair<Tag, bool>>;  // per key: tag, is a delete
  auto note = [](Newest& n, const std::string& k, Tag t, bool del) { n[k] = std::max(n[k], std::pair{t, del}); };
  Newest by_writer, by_ingest;
  std::deque<std::string> values;  // records view their values (the ingest's thread only)
  std::thread writer([&] {
    std::mt19937_64 rng(1);
    while (ingesting) {
      const auto& k = keys[rng() % keys.size()];
      const Tag tag{++clock, 1};
      const bool del = rng() % 4 == 0;
      if (s.write({del ? K::del : K::put, k, del ? "" : kv::format_tag(tag), tag}).status == StoreStatus::error) ++errors;
      note(by_writer, k, tag, del);
    }
  });
  std::mt19937_64 rng(2);
  for (int b = 0; b < 40; ++b) {
    std::vector<kv::Record> batch;
    for (int i = 0; i < 600; ++i) {
      const auto& k = keys[rng() % keys.size()];
      const Tag tag{++clock, 2};
      const bool del = rng() % 4 == 0;
      batch.push_back({k, del ? std::string_view() : std::string_view(values.emplace_back(kv::format_tag(tag))), tag, del});
      note(by_ingest, k, tag, del);
    }
    std::size_t written = 0, conflicts = 0;
    std::string err;
    if (s.ingest(batch, written, conflicts, err) != StoreStatus::ok) ++errors;
  }
  ingesting = false;
  writer.join();
  CHECK(errors == 0);
  for (const auto& k : keys) {
    const auto& [tag, del] = std::max(by_writer[k], by_ingest[k]);
    CHECK(seen(s, k) == (del ? tombstone_at(tag) : value_at(tag, kv::format_tag(tag))));
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
