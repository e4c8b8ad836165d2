// proxy/quorum.hpp: the ABD steps of a request over a replica set, driven answer by answer: hand-made
// orders first, then a simulation that checks ABD's safety over random answers and failures.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "proxy/quorum.hpp"

using namespace kv;
using namespace kv::proxy;
using Action = Quorum::Action;
using Kind = ReplicaReply::Kind;

namespace {

ReplicaReply value(std::uint64_t counter) { return {Kind::found, Found{Held{Tag{counter, 1}, false}, true}}; }
ReplicaReply tombstone(std::uint64_t counter) { return {Kind::found, Found{Held{Tag{counter, 1}, true}, false}}; }
ReplicaReply nothing() { return {Kind::found, Found{}}; }
const ReplicaReply kStored{Kind::stored, {}};
const ReplicaReply kFailed{Kind::failed, {}};
const ReplicaReply kNotSent{Kind::not_sent, {}};
const ReplicaReply kRefused{Kind::refused, {}};

}  // namespace

TEST_CASE("quorum: a read whose majority agrees answers in one round trip", "[quorum]") {
  Quorum q(QuorumKind::read, 3);
  CHECK(q.majority() == 2);
  q.on_reply(2, value(5));
  CHECK(q.action() == Action::wait);
  q.on_reply(0, value(5));
  CHECK(q.action() == Action::answer);
  CHECK(q.one_round());
  CHECK(q.newest().held.tag == Tag{5, 1});
  q.on_reply(1, value(9));  // after the answer: ignored
  CHECK(q.newest().held.tag == Tag{5, 1});

  Quorum none(QuorumKind::read, 3);  // a key nobody holds: the agreed state is "nothing"
  none.on_reply(0, nothing());
  none.on_reply(1, nothing());
  CHECK(none.action() == Action::answer);
  CHECK_FALSE(none.newest().value);
}

TEST_CASE("quorum: a read that finds replicas apart writes the newest back to a majority first", "[quorum]") {
  Quorum q(QuorumKind::read, 3);
  q.on_reply(0, value(4));
  q.on_reply(1, value(7));
  REQUIRE(q.action() == Action::write_back);
  CHECK(q.newest_replica() == 1);
  q.begin_write_back();
  CHECK(q.tag() == Tag{7, 1});
  CHECK(q.targets() == 0b101);  // every replica not known to hold it
  CHECK(q.action() == Action::wait);
  q.on_reply(2, kStored);
  CHECK(q.action() == Action::answer);
  CHECK_FALSE(q.one_round());

  SECTION("a late query answer holding the newest write counts") {
    Quorum late(QuorumKind::read, 3);
    late.on_reply(0, value(4));
    late.on_reply(1, tombstone(7));
    late.begin_write_back();
    late.on_reply(2, tombstone(7));
    CHECK(late.action() == Action::answer);
    CHECK(late.newest().held.tombstone);
  }
  SECTION("and a newer one too") {
    Quorum late(QuorumKind::read, 3);
    late.on_reply(0, value(4));
    late.on_reply(1, value(7));
    late.begin_write_back();
    late.on_reply(2, value(8));
    CHECK(late.action() == Action::answer);
    CHECK(late.newest().held.tag == Tag{7, 1});  // the read's answer is what its majority found
  }
  SECTION("one more failure than the majority can bear fails it, naming who is missing") {
    Quorum bad(QuorumKind::read, 3);
    bad.on_reply(0, value(4));
    bad.on_reply(1, value(7));
    bad.begin_write_back();
    bad.on_reply(0, kFailed);
    CHECK(bad.action() == Action::wait);  // replica 2 may still take it
    bad.on_reply(2, kNotSent);
    CHECK(bad.action() == Action::fail);
    CHECK(bad.missing() == 0b101);
  }
}

TEST_CASE("quorum: failures are not waited for, and fail the request only past a minority", "[quorum]") {
  Quorum q(QuorumKind::read, 3);
  q.on_reply(0, kFailed);
  q.on_reply(1, value(3));
  CHECK(q.action() == Action::wait);
  q.on_reply(2, value(3));
  CHECK(q.action() == Action::answer);

  Quorum lost(QuorumKind::read, 3);
  lost.on_reply(1, kFailed);
  lost.on_reply(2, kNotSent);
  CHECK(lost.action() == Action::fail);
  CHECK(lost.missing() == 0b110);

  Quorum five(QuorumKind::write, 5);
  five.on_reply(0, kFailed);
  five.on_reply(1, kFailed);
  five.on_reply(2, value(1));
  five.on_reply(3, value(2));
  CHECK(five.action() == Action::wait);
  five.on_reply(4, nothing());
  CHECK(five.action() == Action::store);
  CHECK(five.newest().held.tag == Tag{2, 1});
}

TEST_CASE("quorum: a write queries, stores one tag on all, and answers at a majority", "[quorum]") {
  Quorum q(QuorumKind::write, 3);
  q.on_reply(1, value(3));
  q.on_reply(2, value(8));
  REQUIRE(q.action() == Action::store);
  q.begin_store(Tag{9, 42});
  CHECK(q.targets() == 0b111);
  q.on_reply(0, value(1));  // the query's late answer: no help to a store
  q.on_reply(0, kStored);
  CHECK(q.action() == Action::wait);
  q.on_reply(0, kStored);  // twice: counted once
  CHECK(q.action() == Action::wait);
  q.on_reply(2, kStored);
  CHECK(q.action() == Action::answer);
  CHECK(q.tag() == Tag{9, 42});

  SECTION("a store without a majority may have taken effect: unknown") {
    Quorum w(QuorumKind::write, 3);
    w.on_reply(0, nothing());
    w.on_reply(1, nothing());
    w.begin_store(Tag{1, 7});
    w.on_reply(0, kStored);
    w.on_reply(1, kFailed);
    w.on_reply(2, kNotSent);
    CHECK(w.action() == Action::fail);
    CHECK(w.outcome() == Quorum::Outcome::unknown);
    CHECK(w.missing() == 0b110);
  }
  SECTION("a store that never left: none") {
    Quorum w(QuorumKind::write, 3);
    w.on_reply(0, nothing());
    w.on_reply(1, nothing());
    w.begin_store(Tag{1, 7});
    w.on_reply(0, kNotSent);
    w.on_reply(1, kNotSent);
    CHECK(w.action() == Action::wait);  // no majority now, but the third store decides the outcome
    w.on_reply(2, kNotSent);
    CHECK(w.action() == Action::fail);
    CHECK(w.outcome() == Quorum::Outcome::none);
    CHECK(w.missing() == 0b111);

    Quorum v(QuorumKind::write, 3);  // the same, but the third one left: it may have been stored
    v.on_reply(0, nothing());
    v.on_reply(1, nothing());
    v.begin_store(Tag{1, 7});
    v.on_reply(0, kNotSent);
    v.on_reply(1, kNotSent);
    v.on_reply(2, kStored);
    CHECK(v.action() == Action::fail);
    CHECK(v.outcome() == Quorum::Outcome::unknown);
  }
  SECTION("a query without a majority: nothing was stored") {
    Quorum w(QuorumKind::remove, 3);
    w.on_reply(0, kFailed);
    w.on_reply(2, kFailed);
    CHECK(w.action() == Action::fail);
    CHECK(w.outcome() == Quorum::Outcome::none);
  }
}

TEST_CASE("quorum: a remove answers from the newest state its query found", "[quorum]") {
  Quorum present(QuorumKind::remove, 3);
  present.on_reply(0, tombstone(2));
  present.on_reply(1, value(5));
  CHECK(present.action() == Action::store);
  CHECK(present.newest().value);  // 200

  Quorum gone(QuorumKind::remove, 3);
  gone.on_reply(0, value(2));
  gone.on_reply(1, tombstone(5));
  CHECK_FALSE(gone.newest().value);  // 404
}

TEST_CASE("quorum: a refusal is the client's answer", "[quorum]") {
  Quorum q(QuorumKind::write, 3);
  q.on_reply(1, kRefused);
  CHECK(q.action() == Action::refuse);
  CHECK(q.refused_replica() == 1);

  Quorum s(QuorumKind::write, 3);
  s.on_reply(0, nothing());
  s.on_reply(1, nothing());
  s.begin_store(Tag{1, 1});
  s.on_reply(2, kRefused);
  CHECK(s.action() == Action::refuse);
  CHECK(s.refused_replica() == 2);

  Quorum after(QuorumKind::write, 3);  // once one replica took it, a refusal is a failure
  after.on_reply(0, nothing());
  after.on_reply(1, nothing());
  after.begin_store(Tag{1, 1});
  after.on_reply(0, kStored);
  after.on_reply(2, kRefused);
  CHECK(after.action() == Action::wait);
  after.on_reply(1, kStored);
  CHECK(after.action() == Action::answer);
}

TEST_CASE("quorum: one replica is the single owner", "[quorum]") {
  Quorum r(QuorumKind::read, 1);
  r.on_reply(0, value(1));
  CHECK(r.action() == Action::answer);
  Quorum w(QuorumKind::write, 1);
  w.on_reply(0, nothing());
  w.begin_store(Tag{1, 1});
  w.on_reply(0, kStored);
  CHECK(w.action() == Action::answer);
  Quorum out(QuorumKind::read, 3);
  out.on_reply(7, value(1));  // not a replica of this set
  CHECK(out.action() == Action::wait);
}

// ABD's safety, simulated: replicas hold tags; a write held by a majority before a read begins is
// one the read must return or pass, and a read answers only once a majority holds what it returns.
// Answers arrive in random orders, with random failures (a failed write-back may or may not apply).
TEST_CASE("quorum: reads never return less than a write a majority held, over random histories", "[quorum][property]") {
  std::mt19937 rng(2026);
  for (int round = 0; round < 20000; ++round) {
    const unsigned n = 1 + rng() % 5;
    const unsigned majority = n / 2 + 1;
    std::vector<std::uint64_t> held(n);
    for (auto& t : held) t = rng() % 4;
    // The newest tag a majority held when the read began: the read must return it or a newer one.
    std::vector<std::uint64_t> sorted = held;
    std::sort(sorted.rbegin(), sorted.rend());
    const std::uint64_t committed = sorted[majority - 1];
    std::vector<bool> down(n);
    for (unsigned r = 0; r < n; ++r) down[r] = rng() % 4 == 0;

    Quorum q(QuorumKind::read, n);
    std::vector<unsigned> order(n);
    for (unsigned r = 0; r < n; ++r) order[r] = r;
    std::shuffle(order.begin(), order.end(), rng);
    auto reply_of = [&](unsigned r) { return down[r] ? kFailed : held[r] ? value(held[r]) : nothing(); };
    for (unsigned r : order) {
      q.on_reply(r, reply_of(r));
      if (q.action() != Action::wait) break;
    }
    if (q.action() == Action::write_back) {
      q.begin_write_back();
      const std::uint64_t tag = q.tag().counter;
      std::shuffle(order.begin(), order.end(), rng);
      for (unsigned r : order) {
        if (!(q.targets() & (1u << r))) continue;
        const bool ok = !down[r] && rng() % 5 != 0;
        if (ok || rng() % 2) held[r] = std::max(held[r], tag);  // a failed write-back may have applied
        q.on_reply(r, ok ? kStored : kFailed);
        if (q.action() != Action::wait) break;
      }
    }
    INFO("round " << round << ", " << n << " replicas");
    const unsigned up = static_cast<unsigned>(std::count(down.begin(), down.end(), false));
    if (q.action() == Action::answer) {
      const std::uint64_t got = q.newest().held.tag.counter;
      REQUIRE(got >= committed);
      unsigned holding = 0;
      for (auto t : held) holding += t >= got;
      REQUIRE(holding >= majority);
    } else {
      REQUIRE(q.action() == Action::fail);
      REQUIRE(q.missing() != 0);
    }
    if (up == n) REQUIRE(q.action() != Action::wait);
  }
}

TEST_CASE("quorum: a write's tag goes above every floor its query found; stores refused below one were not stored", "[quorum][floors]") {
  Quorum q(QuorumKind::write, 3);
  ReplicaReply floored = nothing();
  floored.found.floor = 70;
  q.on_reply(0, floored);
  q.on_reply(1, value(9));
  REQUIRE(q.action() == Action::store);
  CHECK(q.newest().held.tag == Tag{9, 1});
  CHECK(q.floor() == 70);  // the caller makes the tag above max(newest, floor)

  SECTION("refused below the floor everywhere: surely not stored, outcome none") {
    q.begin_store(Tag{10, 3});
    q.on_reply(0, {Kind::below_floor, {}});
    q.on_reply(1, {Kind::below_floor, {}});
    CHECK(q.action() == Action::wait);  // the third decides none or unknown
    q.on_reply(2, {Kind::below_floor, {}});
    CHECK(q.action() == Action::fail);
    CHECK(q.outcome() == Quorum::Outcome::none);
  }
  SECTION("taken by one before its floor rose, refused by two: unknown") {
    q.begin_store(Tag{10, 3});
    q.on_reply(0, kStored);
    q.on_reply(1, {Kind::below_floor, {}});
    q.on_reply(2, {Kind::below_floor, {}});
    CHECK(q.action() == Action::fail);
    CHECK(q.outcome() == Quorum::Outcome::unknown);
  }
  SECTION("refused by one: the other two make the majority") {
    q.begin_store(Tag{71, 3});
    q.on_reply(0, {Kind::below_floor, {}});
    q.on_reply(1, kStored);
    q.on_reply(2, kStored);
    CHECK(q.action() == Action::answer);
  }
}

namespace {

ReplicaReply purged(std::uint64_t floor) {
  ReplicaReply r = nothing();
  r.found.floor = floor;
  return r;
}
ReplicaReply stored_at(std::uint64_t counter) { return {Kind::stored, Found{Held{Tag{counter, 1}, false}, true}}; }
// One round of a read that cannot decide: replica 0 holds 5, replica 1 purged the key under floor 9
// and refuses the write-back below it, replica 2 is cut off.
void undecided_round(Quorum& q) {
  q.on_reply(0, value(5));
  q.on_reply(1, purged(9));
  q.begin_write_back();
  q.on_reply(1, {Kind::below_floor, {}});
  q.on_reply(2, kNotSent);
}

}  // namespace

TEST_CASE("quorum: a value not above a floor another replica reports counts only where it is held exactly", "[quorum][floors]") {
  SECTION("a read: a superseded write-back is no proof (the value may have been deleted and purged)") {
    Quorum q(QuorumKind::read, 3);
    q.on_reply(0, value(5));   // a replica the delete had not reached yet
    q.on_reply(1, purged(9));  // one that purged the key's tombstone: nothing, floor 9
    REQUIRE(q.ambiguous());
    REQUIRE(q.action() == Action::write_back);
    q.begin_write_back();
    CHECK(q.targets() == 0b110);
    q.on_reply(1, {Kind::below_floor, {}});
    q.on_reply(2, stored_at(12));  // superseded by a newer write: not a holder of 5
    REQUIRE(q.action() == Action::requery);  // undecided: asked once more, not failed yet
    q.on_reply(0, value(5));                 // no answer is taken until the requery begins
    q.begin_requery();
    CHECK(q.requeried());
    CHECK(q.action() == Action::wait);
    CHECK(q.floor() == 0);
    CHECK(q.targets() == 0);
    SECTION("the second round sees the newer write: ABD as usual") {
      q.on_reply(2, value(12));
      q.on_reply(1, purged(9));
      REQUIRE(q.action() == Action::write_back);
      CHECK_FALSE(q.ambiguous());
      q.begin_write_back();
      q.on_reply(0, stored_at(12));
      CHECK(q.action() == Action::answer);
      CHECK(q.newest().held.tag == Tag{12, 1});
    }
    SECTION("the second round undecided too: it fails") {
      undecided_round(q);
      CHECK(q.action() == Action::fail);
      CHECK(q.missing() == 0b110);
    }
  }
  SECTION("a read whose first round found the value before the delete, the second the purge: 404") {
    Quorum q(QuorumKind::read, 3);
    undecided_round(q);
    REQUIRE(q.action() == Action::requery);
    q.begin_requery();
    q.on_reply(2, kNotSent);
    q.on_reply(0, purged(9));  // the delete reached it, and its tombstone was purged since
    q.on_reply(1, purged(9));
    CHECK(q.action() == Action::answer);
    CHECK(q.one_round());
    CHECK_FALSE(q.newest().value);
  }
  SECTION("a replica that failed outright, not undecided: no requery") {
    Quorum q(QuorumKind::read, 3);
    q.on_reply(0, value(5));
    q.on_reply(1, value(7));
    q.begin_write_back();
    q.on_reply(0, kFailed);
    q.on_reply(2, kNotSent);
    CHECK(q.action() == Action::fail);
  }
  SECTION("a read: a majority that holds exactly that version answers") {
    Quorum q(QuorumKind::read, 3);
    q.on_reply(0, value(5));
    q.on_reply(1, purged(9));
    q.begin_write_back();
    q.on_reply(2, value(5));  // the query's late answer: holds it exactly
    CHECK(q.action() == Action::answer);
    CHECK(q.holders() == 0b101);
  }
  SECTION("a value above every floor: ABD as usual") {
    Quorum q(QuorumKind::read, 3);
    q.on_reply(0, value(10));
    q.on_reply(1, purged(9));
    CHECK_FALSE(q.ambiguous());
    q.begin_write_back();
    q.on_reply(2, stored_at(12));
    CHECK(q.action() == Action::answer);
  }
  SECTION("a remove reports present or absent only on a majority, else fails storing nothing") {
    Quorum absent(QuorumKind::remove, 3);
    absent.on_reply(0, value(5));
    absent.on_reply(1, purged(9));
    CHECK(absent.action() == Action::wait);  // one holds it, one does not: the third decides
    absent.on_reply(2, purged(9));
    REQUIRE(absent.action() == Action::store);
    CHECK_FALSE(absent.present());
    CHECK(absent.floor() == 9);

    Quorum present(QuorumKind::remove, 3);
    present.on_reply(0, value(5));
    present.on_reply(1, purged(9));
    present.on_reply(2, value(5));
    REQUIRE(present.action() == Action::store);
    CHECK(present.present());

    Quorum unknown(QuorumKind::remove, 3);
    unknown.on_reply(0, value(5));
    unknown.on_reply(1, purged(9));
    unknown.on_reply(2, kFailed);
    REQUIRE(unknown.action() == Action::requery);  // asked once more first
    unknown.begin_requery();
    unknown.on_reply(0, value(5));
    unknown.on_reply(1, purged(9));
    unknown.on_reply(2, kFailed);
    CHECK(unknown.action() == Action::fail);
    CHECK(unknown.outcome() == Quorum::Outcome::none);
    CHECK(unknown.missing() == 0b100);

    Quorum settled(QuorumKind::remove, 3);  // the second round finds the delete's tombstone
    settled.on_reply(0, value(5));
    settled.on_reply(1, purged(9));
    settled.on_reply(2, kNotSent);
    REQUIRE(settled.action() == Action::requery);
    settled.begin_requery();
    settled.on_reply(0, tombstone(9));
    settled.on_reply(1, purged(9));
    REQUIRE(settled.action() == Action::store);
    CHECK_FALSE(settled.present());
  }
}

// ---- joint quorums (a ring change: the key's old replica set and its new one) ------------------

TEST_CASE("quorum system: one set is a majority of it; two sets need a majority of each", "[quorum][joint]") {
  const QuorumSystem three = QuorumSystem::majority_of(3);
  CHECK_FALSE(three.is_joint());
  CHECK(three.is_quorum(0b011));
  CHECK(three.is_quorum(0b101));
  CHECK_FALSE(three.is_quorum(0b100));
  CHECK(three.first_quorum(0b111) == 0b011);  // the first majority in placement order
  CHECK(three.first_quorum(0b110) == 0b110);
  CHECK(three.first_quorum(0b100) == 0b100);  // no quorum up: every one up is asked

  // A node replaces another: old {A,B,C}, new {A,B,D}; members A=0, B=1, C=2, D=3.
  const QuorumSystem swap = QuorumSystem::joint(4, 0b0111, 0b1011);
  REQUIRE(swap.is_joint());
  CHECK(swap.is_quorum(0b0011));        // A and B: two of each set
  CHECK_FALSE(swap.is_quorum(0b0101));  // A and C: two of the old set, one of the new
  CHECK_FALSE(swap.is_quorum(0b1001));  // A and D: one of the old set
  CHECK(swap.is_quorum(0b1101));        // A, C and D
  CHECK(swap.first_quorum(0b1111) == 0b0011);  // the members of both sets first
  CHECK(swap.first_quorum(0b1101) == 0b1101);  // B down: A, then C for the old set and D for the new

  // replicas 1 -> 3: old {A}, new {A,B,C}: A is in every quorum.
  const QuorumSystem grow = QuorumSystem::joint(3, 0b001, 0b111);
  CHECK(grow.is_quorum(0b011));
  CHECK_FALSE(grow.is_quorum(0b110));
  CHECK(grow.first_quorum(0b111) == 0b011);

  // Disjoint sets: old {A,B,C}, new {D,E,F}.
  const QuorumSystem move = QuorumSystem::joint(6, 0b000111, 0b111000);
  CHECK(move.first_quorum(0b111111) == 0b011011);
  CHECK_FALSE(move.is_quorum(0b000111));

  // The same set twice is one set.
  CHECK_FALSE(QuorumSystem::joint(3, 0b111, 0b111).is_joint());
}

// The overlap every proxy relies on while the others take the change's steps at other times: a quorum
// of a proxy in the change meets every quorum of one routing by the old ring alone, by the new ring
// alone, or in the change too. Every pair of sets of up to 5 members each (the union up to 10), every
// pair of quorums.
TEST_CASE("quorum system: joint quorums meet every quorum of either ring and each other", "[quorum][joint][property]") {
  std::mt19937 rng(19);
  for (int round = 0; round < 400; ++round) {
    const unsigned members = 1 + rng() % kMaxMembers;
    const std::uint32_t all = (1u << members) - 1;
    std::uint32_t old_set = 0, new_set = 0;
    while (!old_set || !new_set || __builtin_popcount(old_set) > 5 || __builtin_popcount(new_set) > 5 ||
           (old_set | new_set) != all) {
      old_set = rng() & all;
      new_set = rng() & all;
    }
    const QuorumSystem joint = QuorumSystem::joint(members, old_set, new_set);
    auto majority_of = [](std::uint32_t set, std::uint32_t bits) {
      return __builtin_popcount(bits & set) >= __builtin_popcount(set) / 2 + 1;
    };
    for (std::uint32_t a = 0; a <= all; ++a) {
      if (!joint.is_quorum(a)) continue;
      INFO("round " << round << " old " << old_set << " new " << new_set << " quorum " << a);
      REQUIRE(majority_of(old_set, a));
      REQUIRE(majority_of(new_set, a));
      for (std::uint32_t b = 0; b <= all; b += 1 + rng() % 7) {
        if (majority_of(old_set, b) || majority_of(new_set, b) || joint.is_quorum(b)) REQUIRE((a & b) != 0);
      }
    }
    const std::uint32_t first = joint.first_quorum(all);
    REQUIRE(joint.is_quorum(first));
    // As small as it can be: dropping any member breaks it.
    for (unsigned m = 0; m < members; ++m)
      if (first & (1u << m)) REQUIRE_FALSE(joint.is_quorum(first & ~(1u << m)));
  }
}

TEST_CASE("quorum: a joint request waits for a majority of each set, and fails when either is lost", "[quorum][joint]") {
  // old {A,B,C} = 0..2, new {A,B,D} with D = 3.
  const QuorumSystem swap = QuorumSystem::joint(4, 0b0111, 0b1011);
  SECTION("a read: two of the old set are not enough while the new set has one") {
    Quorum q(QuorumKind::read, swap);
    q.on_reply(0, value(5));
    q.on_reply(2, value(5));
    CHECK(q.action() == Action::wait);
    q.on_reply(3, nothing());  // the new replica, not copied to yet
    REQUIRE(q.action() == Action::write_back);  // it lacks the newest: written back there first
    q.begin_write_back();
    CHECK(q.targets() == 0b1010);
    q.on_reply(3, kStored);
    CHECK(q.action() == Action::answer);
    CHECK(q.newest().held.tag == Tag{5, 1});
  }
  SECTION("a write fails once the new set cannot make a majority, though the old one can") {
    Quorum q(QuorumKind::write, swap);
    q.on_reply(0, value(5));
    q.on_reply(1, kFailed);
    q.on_reply(2, value(5));
    CHECK(q.action() == Action::wait);
    q.on_reply(3, kNotSent);
    CHECK(q.action() == Action::fail);
    CHECK(q.missing() == 0b1010);
  }
  SECTION("a write's store holds once a majority of each set has it") {
    Quorum q(QuorumKind::write, swap);
    for (unsigned r = 0; r < 4; ++r) q.on_reply(r, value(5));
    REQUIRE(q.action() == Action::store);
    q.begin_store(Tag{6, 2});
    CHECK(q.targets() == 0b1111);
    q.on_reply(0, kStored);
    q.on_reply(2, kStored);
    CHECK(q.action() == Action::wait);  // the old set has two, the new set one
    q.on_reply(3, kStored);
    CHECK(q.action() == Action::answer);
  }
}

// The history property of the single-set test above, across a ring change: writes committed by a
// quorum of the old ring alone (before the change), then reads by joint quorums, never return less.
TEST_CASE("quorum: joint reads never return less than a write the old ring's majority held", "[quorum][joint][property]") {
  std::mt19937 rng(2027);
  for (int round = 0; round < 20000; ++round) {
    const unsigned old_n = 1 + rng() % 5, added = rng() % 4;
    const unsigned members = old_n + added;
    const std::uint32_t old_set = (1u << old_n) - 1;
    std::uint32_t new_set = ((1u << members) - 1) & ~old_set;  // the added members, and some old ones
    for (unsigned r = 0; r < old_n; ++r)
      if (rng() % 2 || new_set == 0) new_set |= 1u << r;
    const QuorumSystem joint = QuorumSystem::joint(members, old_set, new_set);
    std::vector<std::uint64_t> held(members, 0);
    for (unsigned r = 0; r < old_n; ++r) held[r] = rng() % 4;  // new members hold nothing yet
    std::vector<std::uint64_t> sorted(held.begin(), held.begin() + old_n);
    std::sort(sorted.rbegin(), sorted.rend());
    const std::uint64_t committed = sorted[old_n / 2];  // held by a majority of the old set
    std::vector<bool> down(members);
    for (unsigned r = 0; r < members; ++r) down[r] = rng() % 5 == 0;

    Quorum q(QuorumKind::read, joint);
    std::vector<unsigned> order(members);
    for (unsigned r = 0; r < members; ++r) order[r] = r;
    std::shuffle(order.begin(), order.end(), rng);
    for (unsigned r : order) {
      q.on_reply(r, down[r] ? kFailed : held[r] ? value(held[r]) : nothing());
      if (q.action() != Action::wait) break;
    }
    if (q.action() == Action::write_back) {
      q.begin_write_back();
      const std::uint64_t tag = q.tag().counter;
      for (unsigned r : order) {
        if (!(q.targets() & (1u << r))) continue;
        const bool ok = !down[r];
        if (ok) held[r] = std::max(held[r], tag);
        q.on_reply(r, ok ? kStored : kFailed);
        if (q.action() != Action::wait) break;
      }
    }
    INFO("round " << round);
    if (q.action() == Action::answer) {
      const std::uint64_t got = q.newest().held.tag.counter;
      REQUIRE(got >= committed);
      std::uint32_t holding = 0;
      for (unsigned r = 0; r < members; ++r)
        if (held[r] >= got) holding |= 1u << r;
      REQUIRE(joint.is_quorum(holding));  // later reads by the new ring alone see it
    } else {
      REQUIRE(q.action() == Action::fail);
    }
  }
}
