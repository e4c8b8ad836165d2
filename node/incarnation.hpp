// Whether this node's copy can be trusted in a quorum (REPLICATION.md, guarantee 7). A replica that
// forgot writes it acknowledged (its data directory lost, or replaced by an empty one) would break
// quorum intersection: a read could miss a write, a new write could get a tag below one already
// stored. So each data directory carries an incarnation id, made when the directory is, and each
// node records, durably, the incarnation it last saw of each peer (peers tell theirs on every
// anti-entropy request, and hear back what was recorded of them before).
//
// States (kept in the store, so that a crash at any point resumes where it was):
//   checking    a directory made at this start: its node may be new (a new cluster, a new node) or
//               may have lost its disk. It asks every peer; one that remembers another incarnation of
//               it means lost data (-> recovering); when every peer has answered and none does, the
//               node is new (-> serving). A node with a peer down stays checking until it answers.
//   recovering  rebuilding: it takes writes at once, but refuses the reads and tag queries of
//               coordinators (/replica/get answers 503) until it has completed an exchange, pulling
//               everything newer, with every peer since recovering began (-> serving). Every write
//               acknowledged before the loss is on a majority, so on some peer it pulls from; writes
//               after the loss it stored itself, or they are on a majority without it.
//   serving     a full member. A directory from before incarnations, with its data, starts here.
// `kvnode --recover` starts recovering whatever the directory says: for a directory restored from a
// backup, which has forgotten the writes after the backup but looks, to itself, intact.
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "node/store.hpp"

namespace kv {

enum class NodeState : std::uint8_t { checking, recovering, serving };
std::string_view state_name(NodeState s) noexcept;

class Incarnation {
 public:
  // Reads this node's incarnation and state from `store`, or makes them (a new directory: checking).
  // `peers`: the ids of every node this one shares a replica set with.
  Incarnation(Store& store, std::vector<std::string> peers, bool recover);

  const std::string& id() const noexcept { return id_; }  // 16 hex digits
  NodeState state() const;
  bool serving() const { return state() == NodeState::serving; }
  // Peers that answered (checking) or were exchanged with (recovering), and how many there are.
  std::size_t peers_done() const;
  std::size_t peer_count() const;
  // The node adopted a ring with these peers (node/replication.hpp): the current state's step starts
  // again with them, as at a start on that ring (an exchange done by the old ring's sets says nothing
  // of the new ones). Call it with no exchange in flight.
  void set_peers(std::vector<std::string> peers);

  // A peer's request carried its incarnation: records it (durably, when it changed) and returns what
  // was recorded before ("" for nothing).
  std::string saw_peer(std::string_view peer, std::string_view incarnation);
  // A peer's answer told what it had recorded of this node ("" for nothing).
  void peer_remembers(std::string_view peer, std::string_view remembered);
  // An exchange with `peer` completed: everything it held newer was pulled. Call it only for an
  // exchange that began after peer_remembers() was told of that peer.
  void exchange_done(std::string_view peer);

 private:
  void enter(NodeState s);  // with mutex_ held

  Store& store_;
  std::vector<std::string> peers_;
  std::string id_;
  mutable std::mutex mutex_;
  NodeState state_ = NodeState::serving;
  std::set<std::string, std::less<>> done_;  // the peers of the current state's step
};

}  // namespace kv
