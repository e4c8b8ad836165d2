// Where a request goes: a pure function of what the request does, its key's hash and the topology in
// use (the ring, the nodes' health, and the rebalance in progress if any). No I/O and no state of its
// own, so that tests can ask it about every phase; the client connection runs the plan it returns.
//
// A key is only ever served by its owner: with no rebalance, the request goes to the owner as it
// came (the owner orders the writes of its keys: common/version.hpp). During a rebalance, for a key
// whose owner changes between the rings (other keys are routed as before):
//   dual_write  reads: the old owner. Writes and deletes: a versioned write, new owner then old.
//   read_new    reads: both owners, the newer answers (written back first to the other where they
//               differ). Writes and deletes: a versioned write, old owner then new.
// A versioned write asks both owners for the tag they hold, makes one newer than both, and stores it
// on both, the node reads come from last: a write is seen by no read before both owners have it, and
// two writes of one key apply in one order on both owners whatever order they arrive in. The old
// owner may meanwhile take plain writes from proxies not yet in dual_write; the copy carries them
// over, newest tag wins. Reading both owners in read_new makes the switch from old-owner reads to
// new-owner reads safe while some proxies are still in dual_write: a read never sees a write that a
// later read elsewhere could miss. If any node a plan needs is marked down, the answer is 503 naming
// it, never another node: its keys live there.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "http/policy.hpp"
#include "http/scan.hpp"
#include "proxy/cluster.hpp"
#include "proxy/quorum.hpp"

namespace kv::proxy {

enum class Access : std::uint8_t { read, write, remove };  // GET/HEAD; POST, PUT and the rest; DELETE
constexpr Access access_of(http::Method m) noexcept {
  if (http::is_read(m)) return Access::read;
  return m == http::Method::delete_ ? Access::remove : Access::write;
}

enum class Plan : std::uint8_t {
  forward,          // nodes[0] alone, the request as it came
  versioned_write,  // tag query to both, then the write with one tag to nodes[0], then nodes[1],
                    // whose answer the client gets
  read_both,        // versioned GET to nodes[0] (the new owner) and nodes[1] (the old): the newer
                    // answers, written back first to the other where they differ
};

struct Route {
  Plan plan = Plan::forward;
  std::array<Backend*, 2> nodes{};  // live as long as the topology the route was made from
  bool moving = false;              // the key changes owner in the rebalance in progress
  Backend* down = nullptr;          // a node of the plan is marked down: answer 503 naming it
  std::uint8_t node_count() const noexcept { return plan == Plan::forward ? 1 : 2; }
};

// Inline: it runs for every request, and most of it is two lookups on the ring.
inline Route route(const Topology& t, std::uint64_t key_hash, Access access) noexcept {
  Route r;
  Backend* owner = t.backends[t.ring->owner_of_hash(key_hash)].get();
  r.nodes[0] = owner;
  if (t.migration) [[unlikely]] {
    const Migration& m = *t.migration;
    Backend* next = m.backends[m.ring->owner_of_hash(key_hash)].get();
    if (next->id != owner->id) {
      r.moving = true;
      const bool read = access == Access::read;
      if (m.phase() == Phase::read_new) {
        r.plan = read ? Plan::read_both : Plan::versioned_write;
        r.nodes = read ? std::array<Backend*, 2>{next, owner} : std::array<Backend*, 2>{owner, next};
      } else if (!read) {
        r.plan = Plan::versioned_write;
        r.nodes = {next, owner};
      }
    }
  }
  for (std::uint8_t i = 0; i < r.node_count(); ++i) {
    if (!r.nodes[i]->up.load(std::memory_order_relaxed)) {
      r.down = r.nodes[i];
      break;
    }
  }
  return r;
}

// ---- replicated rings -----------------------------------------------------------------------------
// With replicas (either ring of a change having more than one), every request of a key is a quorum
// request (proxy/quorum.hpp) over its replicas. Outside a change, or for a key whose replica set is
// the same in both rings, those are its replica set in placement order, a majority of them a quorum.
// During a change (both phases alike) a key whose set changes is asked at the union of its old set
// (in placement order) and the new set's members not in it (in theirs), and a quorum is a majority of
// each set (joint quorums; ../shared/REPLICATION.md, guarantee 8). The phases differ only for the
// rebalancer, which copies in dual_write what the new sets lack before any proxy routes by NEW alone.
struct ReplicaRoute {
  std::array<Backend*, kMaxMembers> replicas{};  // live as long as the topology the route was made from
  unsigned count = 0;
  QuorumSystem system;
  bool moving = false;  // the key's replica set changes in the ring change in progress
  std::span<Backend* const> members() const noexcept { return {replicas.data(), count}; }
};

inline bool replicated(const Topology& t) noexcept {
  return t.ring->replicas() > 1 || (t.migration && t.migration->ring->replicas() > 1);
}

inline ReplicaRoute replica_route(const Topology& t, std::uint64_t key_hash) noexcept {
  ReplicaRoute r;
  const ReplicaSet before = t.ring->replicas_of_hash(key_hash);
  for (std::uint32_t n : before) r.replicas[r.count++] = t.backends[n].get();
  const std::uint32_t old_set = (std::uint32_t{1} << r.count) - 1;
  std::uint32_t new_set = old_set;
  if (t.migration) [[unlikely]] {
    const Migration& m = *t.migration;
    new_set = 0;
    for (std::uint32_t n : m.ring->replicas_of_hash(key_hash)) {
      Backend* b = m.backends[n].get();  // shared with the ring in use where id and address match
      unsigned i = 0;
      while (i < r.count && r.replicas[i] != b) ++i;
      if (i == r.count) r.replicas[r.count++] = b;
      new_set |= std::uint32_t{1} << i;
    }
    r.moving = new_set != old_set;
  }
  r.system = QuorumSystem::joint(r.count, old_set, new_set);
  return r;
}

// Whether a versioned write goes on to its next node after this answer: the node took the write
// (2xx; or superseded it, which also answers 2xx), or it is a delete of a key the node held no value
// of (404: it still keeps the tombstone). A query goes on after 200 or 404 alike.
constexpr bool proceeds(Access access, unsigned status) noexcept {
  return status / 100 == 2 || (status == 404 && access == Access::remove);
}

}  // namespace kv::proxy
