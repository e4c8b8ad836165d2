// Segment floors (node/floors.hpp): they only rise, survive a restart, are learned from every peer by
// a new directory before it admits a coordinator's store, and decide what goes in where a key holds
// nothing.
#include <catch2/catch.hpp>

#include "common/anti_entropy.hpp"
#include "common/storage_key.hpp"
#include "node/floors.hpp"

using kv::Floors;
namespace ae = kv::anti_entropy;

namespace {

std::uint64_t hash_in(std::uint32_t segment) { return ae::segment_range(segment).lo + 5; }

}  // namespace

TEST_CASE("floors: raised durably, only upwards, and what they admit", "[floors]") {
  auto store = kv::open_memory_store();
  {
    Floors f(*store, {"n2", "n3"}, false);
    CHECK(f.known());
    CHECK(f.segments() == 0);
    const auto g = f.generation();
    f.raise({{3, 70}, {9, 40}});
    CHECK(f.generation() == g + 1);
    f.raise({{3, 50}});  // lower: no floor changes, but the generation does (a purge follows)
    CHECK(f.generation() == g + 2);
    CHECK(f.floor(3) == 70);
    CHECK(f.floor_of_hash(hash_in(9)) == 40);
    CHECK(f.floor(4) == 0);
    CHECK(f.segments() == 2);
    CHECK(f.all() == std::vector<ae::SegmentFloor>{{3, 70}, {9, 40}});
    // A coordinator's store where the key holds nothing: only above the floor.
    CHECK_FALSE(f.admits(hash_in(3), 70));
    CHECK(f.admits(hash_in(3), 71));
    CHECK(f.admits(hash_in(4), 1));
    // A pulled record: in while the floors are at the generation it was asked under.
    CHECK(f.admits(hash_in(3), 5, f.generation()));
    CHECK_FALSE(f.admits(hash_in(3), 5, g));
  }
  Floors again(*store, {"n2", "n3"}, false);  // a restart
  CHECK(again.all() == std::vector<ae::SegmentFloor>{{3, 70}, {9, 40}});
  CHECK(again.segments() == 2);
}

TEST_CASE("floors: a new directory learns every peer's before it admits a coordinator's store, across a restart", "[floors]") {
  auto store = kv::open_memory_store();
  {
    Floors f(*store, {"n2", "n3"}, true);
    CHECK_FALSE(f.known());
    CHECK_FALSE(f.admits(hash_in(1), 1000));  // nothing known: refused, whatever the tag
    CHECK(f.admits(hash_in(1), 1000, f.generation()));  // pulls go on
    f.raise({{1, 10}});
    f.learned_from("n2");
    CHECK(f.peers_learned() == 1);
    CHECK_FALSE(f.known());
  }
  Floors restarted(*store, {"n2", "n3"}, false);  // a crash while learning: it starts over
  CHECK_FALSE(restarted.known());
  CHECK(restarted.peers_learned() == 0);
  restarted.learned_from("n3");
  restarted.learned_from("n2");
  CHECK(restarted.known());
  CHECK(restarted.admits(hash_in(1), 11));
  CHECK_FALSE(restarted.admits(hash_in(1), 10));
  Floors later(*store, {"n2", "n3"}, false);
  CHECK(later.known());

  auto alone = kv::open_memory_store();
  CHECK(Floors(*alone, {}, true).known());  // no peer to learn from
}

TEST_CASE("floors: a corrupt floor record is refused at open", "[floors]") {
  auto store = kv::open_memory_store();
  store->set_meta("node/floor/00zz", "5");
  CHECK_THROWS_AS(Floors(*store, {}, false), kv::StoreError);
}

TEST_CASE("floors: a ring adopted in place while learning learns from its new peers", "[floors]") {
  auto store = kv::open_memory_store();
  Floors f(*store, {"n2", "n3"}, true);
  f.learned_from("n2");
  f.set_peers({"n2", "n4"});  // learned by the old ring's peers: start again with the new ones
  CHECK(f.peer_count() == 2);
  CHECK(f.peers_learned() == 0);
  f.learned_from("n2");
  CHECK_FALSE(f.known());
  f.learned_from("n4");
  CHECK(f.known());
  f.set_peers({"n5"});  // known stays known
  CHECK(f.known());
  auto other = kv::open_memory_store();
  Floors g(*other, {"n2"}, true);
  g.set_peers({});  // nobody left to learn from
  CHECK(g.known());
  CHECK(Floors(*other, {"n2"}, false).known());  // and durably
}
