// Floors (node/floors.hpp) as the engines apply them, and the meta records that hold them.
#include "store_testing.hpp"

namespace {

// A floor for every key, and the floors' generation, as kvnode's trees answer them (node/floors.hpp).
struct FloorObserver final : kv::StoreObserver {
  std::uint64_t floor = 0, generation = 1;
  void changed(std::string_view, const kv::Held&, const kv::Held&) noexcept override {}
  bool admits(std::string_view, const Tag& tag, std::uint64_t floors_seen) const noexcept override {
    return (floors_seen != 0 && floors_seen == generation) || tag.counter > floor;
  }
};

}  // namespace

TEST_CASE("floors: a floored write goes in where nothing is held only above the floor; purges drop exact tombstones", "[store][floors]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb", "rocksdb-sync");
  INFO(name);
  Engine e(name);
  auto& s = *e.store;
  FloorObserver floors;
  s.set_observer(&floors);
  const std::string gone = kv::storage_key("gone"), held = kv::storage_key("held"), other = kv::storage_key("other");
  REQUIRE(tagged(s, K::put, held, {5, 1}, "v").applied);
  REQUIRE(tagged(s, K::put, gone, {5, 1}, "v").applied);
  REQUIRE(tagged(s, K::del, gone, {8, 1}).applied);
  std::string err;

  // The tombstones listed in order with their tags, then purged where they still hold exactly that tag.
  std::vector<std::pair<std::string, Tag>> listed;
  const HashRange all{0, kMax};
  REQUIRE(s.tombstones({&all, 1}, 0, listed, err) == StoreStatus::ok);
  REQUIRE(listed == std::vector<std::pair<std::string, Tag>>{{gone, {8, 1}}});
  std::size_t purged = 0;
  REQUIRE(s.purge_tombstones(std::vector<std::pair<std::string, Tag>>{{gone, {7, 1}}, {held, {5, 1}}}, purged, err) ==
          StoreStatus::ok);
  CHECK(purged == 0);  // another tag; a value
  floors.floor = 8;    // raised first, as kvnode does
  REQUIRE(s.purge_tombstones(listed, purged, err) == StoreStatus::ok);
  CHECK(purged == 1);
  CHECK(seen(s, gone) == kNothing);
  CHECK(s.tombstone_count() == 0);
  s.settle();

  auto floored = [&](K kind, const std::string& key, Tag tag, std::uint64_t floors_seen = 0) {
    kv::WriteOp op{kind, key, kind == K::put ? "late" : "", tag};
    op.floored = true;
    op.floors_seen = floors_seen;
    return s.write(std::move(op));
  };
  // The delayed store of the purged key's older write: refused, nothing stored.
  auto r = floored(K::put, gone, {5, 1});
  CHECK(r.status == StoreStatus::below_floor);
  CHECK_FALSE(r.applied);
  CHECK(floored(K::put, other, {8, 9}).status == StoreStatus::below_floor);  // at the floor: refused too
  CHECK(seen(s, gone) == kNothing);
  CHECK(seen(s, other) == kNothing);
  // A tombstone is never refused, at or below the floor too (taken back from a peer that kept it
  // when a purge was cut short: then the replicas' buckets agree again). There it does not shield
  // its key: a floored value newer than it goes in only above the floor, as where nothing is held
  // (else a value a purged delete removed would come back by its tag); one older is superseded.
  const std::string late = kv::storage_key("deleted late");
  r = floored(K::del, late, {4, 1});
  CHECK((r.status == StoreStatus::not_found && r.applied));
  CHECK(floored(K::put, late, {6, 1}).status == StoreStatus::below_floor);
  CHECK(floored(K::put, late, {8, 2}).status == StoreStatus::below_floor);
  r = floored(K::put, late, {3, 1});
  CHECK((r.status == StoreStatus::ok && !r.applied));
  CHECK(seen(s, late) == tombstone_at({4, 1}));
  CHECK(tagged(s, K::put, late, {5, 1}, "copied").applied);  // unfloored: the tags decide
  REQUIRE(tagged(s, K::del, late, {7, 1}).applied);
  CHECK(floored(K::put, late, {6, 2}, 1).applied == false);  // older than the tombstone: superseded
  CHECK(floored(K::put, late, {7, 2}, 1).applied);            // pulled while the floors stayed put
  REQUIRE(tagged(s, K::del, late, {7, 3}).applied);
  CHECK(floored(K::put, late, {9, 1}).applied);  // above the floor
  // Above the floor a tombstone shields its key as any version does.
  REQUIRE(tagged(s, K::del, late, {10, 1}).applied);
  CHECK(floored(K::put, late, {10, 2}).applied);
  // Above the floor: in. Where a key holds something, its tag decides, floor or not.
  CHECK(floored(K::put, other, {9, 1}).applied);
  CHECK(floored(K::put, held, {6, 1}).applied);
  // Unfloored (the rebalancer's copies) and pulled records while the floors stayed put: not checked.
  CHECK(tagged(s, K::put, kv::storage_key("copied"), {2, 1}, "c").applied);
  CHECK(floored(K::put, kv::storage_key("pulled"), {3, 1}, 1).applied);
  // A record pulled before a floor rose (generation 1, now 2): checked.
  floors.generation = 2;
  CHECK(floored(K::put, kv::storage_key("pulled late"), {3, 1}, 1).status == StoreStatus::below_floor);
  std::size_t written = 0, conflicts = 0;
  REQUIRE(s.ingest(std::vector<kv::Record>{{gone, "old", {5, 1}, false}}, written, conflicts, err, 1) == StoreStatus::ok);
  CHECK(written == 0);
  CHECK(seen(s, gone) == kNothing);
  REQUIRE(s.ingest(std::vector<kv::Record>{{gone, "old", {5, 1}, false}}, written, conflicts, err, 2) == StoreStatus::ok);
  CHECK(written == 1);  // the generation it was asked under: no floor rose since
  s.set_observer(nullptr);
}

TEST_CASE("meta records: several in one write, and read back by prefix in order", "[store][floors]") {
  const std::string name = GENERATE(as<std::string>{}, "memory", "rocksdb");
  INFO(name);
  Engine e(name);
  e.store->set_metas(std::vector<std::pair<std::string, std::string>>{{"node/floor/0002", "9"}, {"node/floor/0001", "7"},
                                                                       {"node/other", "x"}});
  CHECK(e.store->metas("node/floor/") ==
        std::vector<std::pair<std::string, std::string>>{{"node/floor/0001", "7"}, {"node/floor/0002", "9"}});
  CHECK(e.store->meta("node/other") == "x");
  CHECK(e.store->metas("nothing/").empty());
}
