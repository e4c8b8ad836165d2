// Where a request goes: a pure function of what the request does, its key's hash and the topology in
// use (the ring, the nodes' health, and the rebalance in progress if any). No I/O and no state of its
// own, so that tests can ask it about every phase; the client connection runs the steps it returns.
//
// A key is only ever served by its owner: with no rebalance, one step to the owner. During a
// rebalance, for a key whose owner changes between the rings (other keys are routed as before):
//   dual_write  reads: the old owner. Writes and deletes: the new owner first (a delete leaves a
//               tombstone there), then the old one, whose answer the client gets.
//   read_new    reads: the new owner. Writes and deletes: the old owner first, then the new one (a
//               delete with a tombstone), whose answer the client gets.
// A write goes on to its next step only if the node took it (proceeds()); otherwise that answer is
// the client's and the write goes no further. If any step's node is marked down, the answer is 503
// naming it, never another node: its keys live there.
#pragma once

#include <array>
#include <cstdint>

#include "http/policy.hpp"
#include "http/scan.hpp"
#include "proxy/cluster.hpp"

namespace kv::proxy {

enum class Access : std::uint8_t { read, write, remove };  // GET/HEAD; POST, PUT and the rest; DELETE
constexpr Access access_of(http::Method m) noexcept {
  if (http::is_read(m)) return Access::read;
  return m == http::Method::delete_ ? Access::remove : Access::write;
}

struct Step {
  Backend* backend = nullptr;  // lives as long as the topology the route was made from
  bool tombstone = false;      // a delete that must leave a tombstone (common/rebalance.hpp)
};

struct Route {
  std::array<Step, 2> steps{};
  std::uint8_t count = 0;  // steps to run, in order; the client gets the last one's answer
  bool moving = false;     // the key changes owner in the rebalance in progress
  Backend* down = nullptr;  // a step's node is marked down: answer 503 naming it, run nothing
};

// Inline: it runs for every request, and most of it is two lookups on the ring.
inline Route route(const Topology& t, std::uint64_t key_hash, Access access) noexcept {
  Route r;
  Backend* owner = t.backends[t.ring->owner_of_hash(key_hash)].get();
  Step last{owner, false};
  Step first{};
  if (t.migration) [[unlikely]] {
    const Migration& m = *t.migration;
    Backend* next = m.backends[m.ring->owner_of_hash(key_hash)].get();
    if (next->id != owner->id) {
      r.moving = true;
      const bool write = access != Access::read;
      const bool remove = access == Access::remove;
      if (m.phase() == Phase::read_new) {
        if (write) first = {owner, false};
        last = {next, remove};
      } else if (write) {
        first = {next, remove};
      }
    }
  }
  if (first.backend) r.steps[r.count++] = first;
  r.steps[r.count++] = last;
  for (std::uint8_t i = 0; i < r.count; ++i) {
    if (!r.steps[i].backend->up.load(std::memory_order_relaxed)) {
      r.down = r.steps[i].backend;
      break;
    }
  }
  return r;
}

// Whether a step of a write that is not the last goes on after this answer from its node: it took
// the write (2xx), or it is a delete of a key the node did not have (404).
constexpr bool proceeds(Access access, unsigned status) noexcept {
  return status / 100 == 2 || (status == 404 && access == Access::remove);
}

}  // namespace kv::proxy
