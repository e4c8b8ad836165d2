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
//     turns taken before it. That can take a peer's timeout per purge request, so kvnode runs the
//     pause on a thread pool of its own (node/session.hpp), not on the one the peers' requests use.
//   - It is durable (a meta record, node/purges_paused): a node that restarts mid-change stays paused.
//   - A node down when apply resumed the others would stay paused for good, its sets purging nothing.
//     So a resumed node remembers the change it was resumed for (node/purges_resumed) and names it in
//     its tree answers (X-KV-Purges-Resumed), and a node paused for that same change resumes itself
//     when it sees one: apply resumes nodes only once the change and its drops are done. A peer
//     resumed for another change says nothing of this one.
//   - A node that was down when apply paused the others learns nothing, but purges nothing either: a
//     purge needs every peer of the set, and a paused peer says so in its tree answers (the round has
//     no evidence for that set) and refuses POST /replica/purge (503). When the nodes purge, apply
//     goes on only if every replica set of either ring has at most one member it could not pause:
//     one alive but cut off from apply alone then has no unpaused peer to drop anything with it.
//   - A purge left half done when its node crashes or adopts a ring (its retries are in memory) is
//     finished without it: the peers that dropped the tombstones take them back from those that kept
//     them, and a later round, once the change is over, purges them on evidence of its own
//     (node/floors.hpp, "A purge cut short").
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
  // Resumes from the pause for `change` (durably), and remembers `change` as over; not paused at
  // all, only remembers it. False, and nothing done, when paused for another change. Throws StoreError.
  bool resume(std::string_view change);
  // The change purges are paused for, or "" when they are not.
  std::string paused() const;
  // The last change this node was resumed for, or "" (none since the directory was made).
  std::string resumed() const;
  // The same as JSON values: the change as a string, or null.
  std::string paused_json() const;
  std::string resumed_json() const;

 private:
  void leave() noexcept;

  Store& store_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::string change_;    // "" when not paused
  std::string resumed_;   // the last change resumed for
  std::size_t turns_ = 0;  // held
};

}  // namespace kv
