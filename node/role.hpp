// What a node is for the ring it runs on, as its client and peer endpoints see it: which ring, its
// hash trees, whether it counts in quorums yet, its segment floors. kvnode publishes a new one when
// it adopts a ring in place (node/replication.hpp); each request reads the one published when it
// began, which it keeps alive to its end. No sockets.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "node/floors.hpp"
#include "node/incarnation.hpp"
#include "node/replica_trees.hpp"

namespace kv {

struct NodeRole {
  std::string ring;                            // the fingerprint of the ring it runs on ("": no --ring)
  std::shared_ptr<const ReplicaTrees> trees;   // null: it keeps none (no --ring, or replicas: 1)
  Incarnation* incarnation = nullptr;          // null: it always counts (the node's, which outlives roles)
  const Floors* floors = nullptr;              // null: no floors (the node's, which outlives roles)
  std::function<std::string()> health;         // more /health fields (",\"name\":value..."), or none
};

}  // namespace kv
