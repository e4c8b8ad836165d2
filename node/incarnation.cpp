#include "node/incarnation.hpp"

#include <iostream>
#include <random>

#include "common/transfer.hpp"

namespace kv {

namespace {

constexpr std::string_view kIdKey = "node/incarnation", kStateKey = "node/state";

std::string peer_key(std::string_view peer) { return "peer/" + std::string(peer) + "/incarnation"; }

NodeState parse_state(std::string_view s) noexcept {
  if (s == "checking") return NodeState::checking;
  if (s == "recovering") return NodeState::recovering;
  return NodeState::serving;
}

}  // namespace

std::string_view state_name(NodeState s) noexcept {
  switch (s) {
    case NodeState::checking: return "checking";
    case NodeState::recovering: return "recovering";
    case NodeState::serving: return "serving";
  }
  return "serving";
}

Incarnation::Incarnation(Store& store, std::vector<std::string> peers, bool recover)
    : store_(store), peers_(std::move(peers)), id_(store.meta(kIdKey)) {
  std::lock_guard lock(mutex_);
  if (id_.empty()) {
    std::random_device rd;
    id_ = hex64((std::uint64_t{rd()} << 32) | rd());
    // The state first: a crash between the two writes leaves a directory without an id, which the
    // next start makes again, still checking.
    const bool empty = store.key_count() == 0 && store.tombstone_count() == 0;
    enter(empty ? NodeState::checking : NodeState::serving);  // data from before incarnations: serving
    store.set_meta(kIdKey, id_);
  } else {
    state_ = parse_state(store.meta(kStateKey));
    std::cerr << "kvnode: incarnation " << id_ << ": " << state_name(state_) << std::endl;
  }
  if (recover) enter(NodeState::recovering);
  if (peers_.empty() && state_ != NodeState::serving) enter(NodeState::serving);  // nobody to ask
}

void Incarnation::enter(NodeState s) {
  store_.set_meta(kStateKey, state_name(s));
  std::cerr << "kvnode: incarnation " << id_ << ": " << state_name(s) << std::endl;
  state_ = s;
  done_.clear();
}

NodeState Incarnation::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

std::size_t Incarnation::peers_done() const {
  std::lock_guard lock(mutex_);
  return state_ == NodeState::serving ? peers_.size() : done_.size();
}

std::size_t Incarnation::peer_count() const {
  std::lock_guard lock(mutex_);
  return peers_.size();
}

void Incarnation::set_peers(std::vector<std::string> peers) {
  std::lock_guard lock(mutex_);
  peers_ = std::move(peers);
  done_.clear();
  if (peers_.empty() && state_ != NodeState::serving) enter(NodeState::serving);  // nobody to ask
}

std::string Incarnation::saw_peer(std::string_view peer, std::string_view incarnation) {
  std::lock_guard lock(mutex_);
  std::string before = store_.meta(peer_key(peer));
  if (!incarnation.empty() && before != incarnation) store_.set_meta(peer_key(peer), incarnation);
  return before;
}

void Incarnation::peer_remembers(std::string_view peer, std::string_view remembered) {
  std::lock_guard lock(mutex_);
  if (state_ != NodeState::checking) return;
  if (!remembered.empty() && remembered != id_) {
    std::cerr << "kvnode: " << peer << " remembers incarnation " << remembered
              << " of this node: its data directory lost writes; rebuilding from the peers" << std::endl;
    enter(NodeState::recovering);
    return;
  }
  done_.insert(std::string(peer));
  if (done_.size() == peers_.size()) enter(NodeState::serving);
}

void Incarnation::exchange_done(std::string_view peer) {
  std::lock_guard lock(mutex_);
  if (state_ != NodeState::recovering) return;
  done_.insert(std::string(peer));
  if (done_.size() == peers_.size()) enter(NodeState::serving);
}

}  // namespace kv
