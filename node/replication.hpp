// A node's part in its ring's replication: the hash trees of its replica sets, the store observer
// that keeps them equal to the store, its incarnation and segment floors, the anti-entropy exchanger;
// and how it adopts another ring in place, while serving (POST /admin/ring).
//
// Adopting a ring (ring-rebalance apply, common/rebalance.hpp) changes which replica sets the node
// belongs to and who its peers are; the store, the incarnation and the floors stay (they belong to the
// data directory, not to a ring). On a thread of its own, with the node serving throughout:
//   1. the new ring's trees are built from the store while it is written to (node/tree_builder.hpp:
//      the store observer tells the builder of every change from before its scan begins);
//   2. the old exchanger stops (its exchange in flight ends); the incarnation and the floors take the
//      new peers, their current step starting again with them, as at a start on the new ring;
//   3. the store observer moves to the new trees in one atomic step: a change told before it went
//      through the builder into them, one told after goes straight in, none twice;
//   4. a new exchanger starts, and the new role (node/role.hpp) is published: from the next request
//      on, /health names the new ring, the peers' exchanges read the new trees.
// Until step 4, the node answers as on the old ring; a request that began before it ends on the role
// it began with. A node stopped part way starts again on the ring file, which already names the new ring.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/ring.hpp"
#include "node/anti_entropy.hpp"
#include "node/floors.hpp"
#include "node/incarnation.hpp"
#include "node/purge_pause.hpp"
#include "node/replica_trees.hpp"
#include "node/role.hpp"
#include "node/store.hpp"

namespace kv {

struct ReplicationOptions {
  AntiEntropyOptions exchange;
  bool exchanges = true;              // false (--anti-entropy-interval-ms 0): no exchanger, no peers to ask
  bool unsafe_serve_at_once = false;  // the broken mode: floors counted as known at once
};

class Replication {
 public:
  // `publish`: told of each role the node takes on (Api::set_role), the first one from start().
  Replication(Store& store, ReplicationOptions options, std::function<void(std::shared_ptr<const NodeRole>)> publish);
  ~Replication();  // stop()
  Replication(const Replication&) = delete;
  Replication& operator=(const Replication&) = delete;

  // Before the node serves, nothing writing to the store yet: the role on `ring` (null: no --ring),
  // with `recover` (kvnode --recover) the data discarded first. Throws StoreError.
  void start(std::shared_ptr<const Ring> ring, std::uint32_t self, std::string fingerprint, bool recover);
  // Once the node listens: the exchanger runs.
  void serve();
  // Ends an adoption in progress (the node stays on the ring it was on) and the exchanger.
  void stop();

  enum class Adoption {
    current,  // it runs on that ring, with no adoption in progress
    started,  // adopting it, in the background, from now
    ongoing,  // adopting it already (an apply run again)
    busy,     // adopting another one
  };
  // Adopts `ring` (its fingerprint, this node's index in it) in place, on a thread of its own;
  // `prepare` runs first, when an adoption starts (kvnode writes the ring file), and may throw.
  Adoption adopt(std::shared_ptr<const Ring> ring, std::uint32_t self, std::string fingerprint,
                 const std::function<void()>& prepare);

  // Tombstone purges paused for a ring change (POST /admin/purges); kept across rings, like the floors.
  PurgePause& purge_pause() noexcept { return pause_; }

  // Prometheus text of the exchanger's figures ("" without one).
  std::string metrics() const;

 private:
  class Observer;
  struct Part;  // the trees and the exchanger of one ring

  std::shared_ptr<Part> make_part(std::shared_ptr<ReplicaTrees> trees, std::string fingerprint);
  void take(std::shared_ptr<Part> part);       // publishes it; with mutex_ held
  void adopt_now(std::shared_ptr<const Ring> ring, std::uint32_t self, std::string fingerprint);
  std::vector<std::string> peers_of(const ReplicaTrees& trees) const;
  // The incarnation and the floors on the peers of `trees` (made with the first replicated ring, then
  // given each new ring's peers), and the trees on those floors. `recover`: kvnode --recover, at start.
  void take_peers(ReplicaTrees& trees, bool recover);

  Store& store_;
  ReplicationOptions options_;
  std::function<void(std::shared_ptr<const NodeRole>)> publish_;
  std::unique_ptr<Observer> observer_;
  std::unique_ptr<Incarnation> incarnation_;  // made with the first replicated ring; kept
  std::unique_ptr<Floors> floors_;            // likewise
  PurgePause pause_;                          // the data directory's, from the start
  mutable std::mutex mutex_;
  std::shared_ptr<Part> part_;  // the ring it runs on
  std::string adopting_;        // the fingerprint of the ring being adopted ("": none)
  bool serving_ = false;        // serve() was called: new exchangers start at once
  std::atomic<bool> stopping_{false};
  std::thread adopter_;
};

}  // namespace kv
