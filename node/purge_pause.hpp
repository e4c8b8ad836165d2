// Purges paused for a ring change (node/floors.hpp says why): while a change runs, a proxy's
// request of a moving key goes to the union of its old and new replica sets, but a purge's evidence
// covers one set, so a tombstone purged then may be one a member new to the set never received.
// ring-rebalance apply pauses every node of both rings (POST /admin/purges?pause=CHANGE) before any
// node adopts the new ring or any proxy stores to the new set, and resumes them once the change and
// its drops are done.
//
// What a pause promises, and how:
//   - When pause() returns, no purge step of this node is under way (its own round's, or a peer's
//     POST /replica/purge), and none starts: each runs inside a Turn, and pause() waits for the
//     turns taken before it.
//   - It is durable (a meta record, node/purges_paused): a node that restarts mid-change stays paused.
//   - A node that was down when apply paused the others learns nothing, but purges nothing either: a
//     purge needs every peer of the set, and a paused peer says so in its tree answers (the round has
//     no evidence for that set) and refuses POST /replica/purge (503). When the nodes purge, apply
//     goes on only if every replica set of either ring has at most one member it could not pause:
//     one alive but cut off from apply alone then has no unpaused peer to drop anything with it.
//   - Not covered: a purge left half done when its node crashes or adopts a ring (its pending
//     retries are in memory): the peers that dropped the tombstones and the node that kept them
//     then differ in that bucket until something repairs it, which nothing does yet.
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>

#include "node/store.hpp"

namespace kv {

class PurgePause {
 public:
  // Reads the pause kept in `store` (throws StoreError).
  explicit PurgePause(Store& store);

  // A purge step's right to run; while one is held, pause() waits. Moves only.
  class Turn {
   public:
    Turn() = default;
    explicit Turn(PurgePause* owner) noexcept : owner_(owner) {}
    Turn(Turn&& o) noexcept : owner_(o.owner_) { o.owner_ = nullptr; }
    Turn& operator=(Turn&&) = delete;
    ~Turn() {
      if (owner_) owner_->leave();
    }
    explicit operator bool() const noexcept { return owner_ != nullptr; }

   private:
    PurgePause* owner_ = nullptr;
  };
  // A turn, or an empty one while paused.
  Turn enter();

  // Pauses for `change` (durably; again: the change named is the latest), then waits until no turn is held.
  // Throws StoreError when the record cannot be written (then nothing changed).
  void pause(std::string_view change);
  // Resumes (durably). Throws StoreError.
  void resume();
  // The change purges are paused for, or "" when they are not.
  std::string paused() const;

 private:
  void leave() noexcept;

  Store& store_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::string change_;    // "" when not paused
  std::size_t turns_ = 0;  // held
};

}  // namespace kv
