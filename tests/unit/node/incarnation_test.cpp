// A data directory's incarnation and whether its node counts in quorums (node/incarnation.hpp): a new
// directory checks with its peers, one that a peer remembers otherwise rebuilds, and every state
// survives a restart.
#include <catch2/catch.hpp>

#include "common/storage_key.hpp"
#include "node/incarnation.hpp"

using kv::Incarnation;
using kv::NodeState;

TEST_CASE("incarnation: a new directory checks with every peer, then serves", "[incarnation]") {
  auto store = kv::open_memory_store();
  Incarnation a(*store, {"n2", "n3"}, false);
  CHECK(a.state() == NodeState::checking);
  CHECK(a.id().size() == 16);
  a.peer_remembers("n2", "");
  CHECK(a.state() == NodeState::checking);  // n3 may remember it
  CHECK(a.peers_done() == 1);
  a.peer_remembers("n3", a.id());
  CHECK(a.state() == NodeState::serving);
  // A restart on the same directory: the same incarnation, serving at once.
  Incarnation again(*store, {"n2", "n3"}, false);
  CHECK(again.id() == a.id());
  CHECK(again.state() == NodeState::serving);
}

TEST_CASE("incarnation: a peer that remembers another incarnation makes a node rebuild from every peer", "[incarnation]") {
  auto store = kv::open_memory_store();
  Incarnation a(*store, {"n2", "n3"}, false);
  a.exchange_done("n2");  // checking: an exchange counts for nothing yet
  a.peer_remembers("n2", "");
  a.peer_remembers("n3", "00000000000000aa");
  CHECK(a.state() == NodeState::recovering);
  a.peer_remembers("n2", "");  // recovering: answers count for nothing
  CHECK(a.peers_done() == 0);
  a.exchange_done("n3");
  CHECK(a.state() == NodeState::recovering);
  // A crash now: the next start is still recovering, and starts over.
  Incarnation restarted(*store, {"n2", "n3"}, false);
  CHECK(restarted.state() == NodeState::recovering);
  CHECK(restarted.peers_done() == 0);
  restarted.exchange_done("n3");
  restarted.exchange_done("n2");
  CHECK(restarted.state() == NodeState::serving);
}

TEST_CASE("incarnation: --recover rebuilds whatever the directory says; data from before incarnations serves", "[incarnation]") {
  auto store = kv::open_memory_store();
  std::string err;
  store->put(kv::storage_key("old"), "data", err);
  Incarnation old(*store, {"n2"}, false);
  CHECK(old.state() == NodeState::serving);
  Incarnation restored(*store, {"n2"}, true);
  CHECK(restored.state() == NodeState::recovering);
  restored.exchange_done("n2");
  CHECK(restored.state() == NodeState::serving);
  // Alone in its sets: nobody to ask.
  auto lone = kv::open_memory_store();
  CHECK(Incarnation(*lone, {}, false).state() == NodeState::serving);
}

TEST_CASE("incarnation: peers' incarnations are recorded, and the one before told", "[incarnation]") {
  auto store = kv::open_memory_store();
  Incarnation a(*store, {"n2"}, false);
  CHECK(a.saw_peer("n2", "0000000000000001").empty());
  CHECK(a.saw_peer("n2", "0000000000000001") == "0000000000000001");
  CHECK(a.saw_peer("n2", "0000000000000002") == "0000000000000001");
  Incarnation restarted(*store, {"n2"}, false);
  CHECK(restarted.saw_peer("n2", "0000000000000002") == "0000000000000002");
}

TEST_CASE("incarnation: a ring adopted in place starts the current step again with its peers", "[incarnation]") {
  auto store = kv::open_memory_store();
  Incarnation a(*store, {"n2", "n3"}, false);
  a.peer_remembers("n2", "");
  CHECK(a.peers_done() == 1);
  // The new ring: n3 out, n4 and n5 in. n2's answer was by the old sets: asked again.
  a.set_peers({"n2", "n4", "n5"});
  CHECK(a.state() == NodeState::checking);
  CHECK(a.peer_count() == 3);
  CHECK(a.peers_done() == 0);
  for (const char* p : {"n2", "n4"}) a.peer_remembers(p, "");
  CHECK(a.state() == NodeState::checking);
  a.peer_remembers("n5", "");
  CHECK(a.state() == NodeState::serving);
  a.set_peers({"n9"});  // serving stays serving
  CHECK(a.state() == NodeState::serving);
  CHECK(a.peers_done() == 1);
  // Recovering with nobody left to rebuild from (a ring of one): serving, as at a start.
  auto other = kv::open_memory_store();
  Incarnation b(*other, {"n2"}, true);
  CHECK(b.state() == NodeState::recovering);
  b.set_peers({});
  CHECK(b.state() == NodeState::serving);
}
