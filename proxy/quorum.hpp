// One client request coordinated over a key's replica set (replicas: N, ../shared/REPLICATION.md),
// as a pure state machine: the ABD steps with majority quorums over per-key versions. The caller
// sends what action() names to the replicas targets() names, and feeds every answer back with
// on_reply(); no sockets and no clocks, so the unit tests drive every order of answers.
//
//   read    query: the versioned GET to all N. Once a majority answered: if they all hold the same
//           write, answer from it (one round trip); else write the newest back to the replicas not
//           known to hold it, and answer once a majority holds it.
//   write   query: the tag query to all N; once a majority answered, the caller makes a tag newer
//   remove  than the newest seen (begin_store), and stores the value (or the tombstone) on all N;
//           the answer once a majority holds it. A remove answers 200 or 404 from what the query's
//           majority held at its newest: a read made within the delete, before its own write.
// A replica that fails is not waited for: the request goes on with the others, and fails only when
// a majority can no longer answer (missing() names the replicas that did not). A failed store says
// whether it may have taken effect (outcome()): "none" only when no store left at all, so while all
// that ended never left, the ones still out are waited for before a failure is said. Late answers of a finished step are still taken
// when they help: a replica found holding the newest write counts towards the write-back's majority.
//
// "A majority" is the QuorumSystem's: of the one replica set, or during a ring change a majority of
// the key's old replica set and one of its new set (joint quorums), the request's replicas being the
// union of the two.
#pragma once

#include <array>
#include <cstdint>

#include "common/config.hpp"
#include "common/version.hpp"
#include "proxy/versioned.hpp"

namespace kv::proxy {

// A request's replicas: a key's replica set, or during a ring change the union of its old and new sets.
inline constexpr unsigned kMaxMembers = 2 * kMaxReplicas;

// Which of a request's replicas make a quorum: a majority of each of its sets. One set normally.
// During a ring change (../shared/REPLICATION.md, guarantee 8) two: the key's replica set in the
// ring the change starts from and the one in the ring it goes to. A proxy that routes by either ring
// alone then meets, in a majority of that ring's set, every quorum of a proxy in the change, and two
// proxies in the change meet in both: the overlap ABD needs, while proxies take the change's steps at
// different times. Members are numbered in the request's order; bit i stands for member i.
class QuorumSystem {
 public:
  // The n replicas of one set.
  static QuorumSystem majority_of(unsigned n) noexcept;
  // `members` replicas, every one in `old_set`, in `new_set` or in both. The same set twice is one.
  static QuorumSystem joint(unsigned members, std::uint32_t old_set, std::uint32_t new_set) noexcept;

  unsigned members() const noexcept { return members_; }
  std::uint32_t all() const noexcept { return (std::uint32_t{1} << members_) - 1; }
  bool is_joint() const noexcept { return set_count_ == 2; }
  unsigned set_count() const noexcept { return set_count_; }
  std::uint32_t set(unsigned i) const noexcept { return sets_[i]; }
  // A majority of every set is among `bits`.
  bool is_quorum(std::uint32_t bits) const noexcept;
  // The replicas to ask first, of `usable`: a quorum as small as it can be, taken in member order,
  // the members of both sets first; every one of `usable` when they make no quorum.
  std::uint32_t first_quorum(std::uint32_t usable) const noexcept;

 private:
  // A majority of `set` is among `bits`.
  static bool has_majority(std::uint32_t bits, std::uint32_t set) noexcept;

  unsigned members_ = 1;
  unsigned set_count_ = 1;
  std::array<std::uint32_t, 2> sets_{1, 0};
};

enum class QuorumKind : std::uint8_t { read, write, remove };

// One replica's answer to one request of the coordinator.
struct ReplicaReply {
  enum class Kind : std::uint8_t {
    found,     // to a query: what it holds (a 200 or 404 carrying a version)
    stored,    // to a store or write-back: it holds that tag or a newer one (applied or superseded;
               // `found.held`: what it holds after)
    refused,   // a 4xx about the request itself (bad body, value too large): the client's answer
    failed,    // no usable answer after the request was sent: it may have been applied
    not_sent,  // the request never left (no connection): surely not applied
    below_floor,  // to a store: refused below the key's segment floor (node/floors.hpp): surely not applied
  };
  Kind kind = Kind::failed;
  Found found;  // kind == found
};

class Quorum {
 public:
  enum class Action : std::uint8_t {
    wait,        // answers are still due
    store,       // write/remove: call begin_store(tag newer than newest().held.tag), then send to targets()
    write_back,  // read: send newest()'s write to targets() (the query's answer of newest_replica())
    answer,      // done: a read answers from newest_replica()'s query answer; a write 200; a remove
                 // 200 when newest().value, else 404
    refuse,      // done: relay refused_replica()'s 4xx
    fail,        // done: 503 naming missing(); a write's outcome()
    requery,     // an ambiguous() read or remove could not decide (below): call begin_requery(), then
                 // send the queries again, to every replica; answers to the first round's requests
                 // are no longer taken (the caller drops them)
  };
  enum class Outcome : std::uint8_t { none, unknown };

  Quorum(QuorumKind kind, const QuorumSystem& system) noexcept;
  Quorum(QuorumKind kind, unsigned replicas) noexcept : Quorum(kind, QuorumSystem::majority_of(replicas)) {}

  unsigned size() const noexcept { return n_; }
  const QuorumSystem& system() const noexcept { return system_; }
  // Of a single set: how many of its replicas make a majority.
  unsigned majority() const noexcept { return system_.members() / 2 + 1; }
  Action action() const noexcept { return action_; }

  // The answer of `replica` (0 .. size()-1) to the request of the current step, or a late one to
  // the query step.
  void on_reply(unsigned replica, const ReplicaReply& reply) noexcept;
  // write/remove, on Action::store: the tag the store carries. The caller then sends to targets().
  void begin_store(const Tag& tag) noexcept;
  // read, on Action::write_back: the write-back is sent to targets().
  void begin_write_back() noexcept;
  // On Action::requery: the request starts over at its query step, once (requeried()).
  void begin_requery() noexcept;
  bool requeried() const noexcept { return requeried_; }

  // Replicas (bit i: replica i) the current store or write-back goes to.
  std::uint32_t targets() const noexcept { return targets_; }
  // The newest write the queries found, and a replica that holds it.
  const Found& newest() const noexcept { return newest_; }
  unsigned newest_replica() const noexcept { return newest_replica_; }
  const Tag& tag() const noexcept { return tag_; }
  // The greatest segment floor the queries reported: a write's tag goes above it too.
  std::uint64_t floor() const noexcept { return floor_; }
  // On answer: the replicas known to hold what the answer says (a read's agreeing majority or the
  // write-back's holders; a write's stores).
  std::uint32_t holders() const noexcept { return holders_; }
  // On refuse: the replica whose 4xx is the client's.
  unsigned refused_replica() const noexcept { return refused_; }
  // On fail: the replicas that gave no usable answer in the step that failed.
  std::uint32_t missing() const noexcept { return missing_; }
  // On fail of a write or remove: whether any replica may have stored it.
  Outcome outcome() const noexcept { return (targets_ & ~not_sent_) ? Outcome::unknown : Outcome::none; }
  // A read answered in one round trip: the majority agreed.
  bool one_round() const noexcept { return one_round_; }
  // A remove's answer: whether the read made within it found a value (200) or not (404).
  bool present() const noexcept { return kind_ == QuorumKind::remove && ambiguous() ? present_ : newest_.value; }
  // The newest find is a value not above a floor some answer reported. A replica that purged a
  // tombstone of the key answers "nothing" with its segment's floor, and a floor does not say which
  // key was purged: the value may be one deleted (and purged) before the request began, seen on a
  // replica the delete had not reached yet (node/floors.hpp). Then only replicas that hold exactly
  // that version count towards a read's majority (never one that superseded its write-back), and a
  // remove reports "present" only when a majority of its answers hold it, "absent" when a majority
  // do not, and fails, storing nothing, when neither can be known. Such a failure is mostly a matter
  // of timing: the value's replica answered before the delete reached it, the others after they had
  // purged. So the request first starts over, once (Action::requery): a new read, linearizable by
  // itself, inside the client's request; the first round stored nothing but a write-back of a value
  // some replica held, refused where its tombstone was purged (node/floors.hpp).
  bool ambiguous() const noexcept { return newest_.value && floor_ != 0 && newest_.held.tag.counter <= floor_; }

 private:
  enum class Step : std::uint8_t { query, store, done };

  void after_query() noexcept;
  void after_store() noexcept;
  void finish(Action a) noexcept {
    action_ = a;
    step_ = Step::done;
  }

  QuorumKind kind_;
  QuorumSystem system_;
  unsigned n_;
  Step step_ = Step::query;
  Action action_ = Action::wait;
  std::uint32_t all_;
  // Query step
  std::uint32_t answered_ = 0;  // found
  std::uint32_t failed_ = 0;    // gave nothing usable
  Found found_[kMaxMembers];
  Found newest_;
  unsigned newest_replica_ = 0;
  std::uint64_t floor_ = 0;
  // Store step (a write's store, or a read's write-back)
  Tag tag_;
  std::uint32_t targets_ = 0;
  std::uint32_t holders_ = 0;       // hold the write being stored (or newer)
  std::uint32_t store_failed_ = 0;  // of the targets: answered without holding it, or not at all
  std::uint32_t not_sent_ = 0;      // of the targets: surely not applied (never left, or refused below a floor)
  bool one_round_ = false;
  bool requeried_ = false;
  bool present_ = false;  // a remove's answer, when ambiguous()
  unsigned refused_ = 0;
  std::uint32_t missing_ = 0;
};

}  // namespace kv::proxy
