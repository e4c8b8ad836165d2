#include "node/replication.hpp"

#include <chrono>
#include <iostream>

#include "common/shared_slot.hpp"
#include "node/tree_builder.hpp"

namespace kv {

namespace {

long long ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

// The store's one observer, set before the node serves: it passes each change on to the trees of the
// ring the node runs on and, while another ring's trees are built, to their builder. Which ones is
// one atomic value, so that moving to new trees is one step: a change read the old value (then the
// builder, done, put it in the new trees) or the new one (then it goes straight in), never both.
class Replication::Observer final : public StoreObserver {
 public:
  struct Target {
    std::shared_ptr<ReplicaTrees> trees;   // the ring's the node runs on (null: none); its floors decide
                                           // which coordinator stores go in where a key holds nothing
    std::shared_ptr<TreeBuilder> builder;  // another ring's, being built (null: none)
  };

  std::shared_ptr<const Target> target() const noexcept { return target_.load(); }
  void follow(Target t) { target_.store(std::make_shared<const Target>(std::move(t))); }

  void changed(std::string_view key, const Held& before, const Held& now) noexcept override {
    const auto t = target_.load();
    if (t->trees) t->trees->changed(key, before, now);
    if (t->builder) t->builder->changed(key, before, now);
  }
  bool admits(std::string_view key, const Tag& tag, std::uint64_t floors_seen) const noexcept override {
    const auto t = target_.load();
    return !t->trees || t->trees->admits(key, tag, floors_seen);
  }

 private:
  SharedSlot<const Target> target_{std::make_shared<const Target>()};
};

struct Replication::Part {
  std::string fingerprint;                 // "" without --ring
  std::shared_ptr<ReplicaTrees> trees;     // null: replicas 1 (or no --ring)
  std::shared_ptr<AntiEntropy> exchanger;  // null: none
};

Replication::Replication(Store& store, ReplicationOptions options, std::function<void(std::shared_ptr<const NodeRole>)> publish)
    : store_(store), options_(std::move(options)), publish_(std::move(publish)), observer_(std::make_unique<Observer>()), pause_(store) {}

Replication::~Replication() { stop(); }

std::vector<std::string> Replication::peers_of(const ReplicaTrees& trees) const {
  // Without exchanges (interval 0) the node cannot check or rebuild its data: it has no peers to ask.
  std::vector<std::string> peers;
  if (options_.exchanges)
    for (const std::uint32_t n : trees.peers()) peers.push_back(trees.ring().node(n).id);
  return peers;
}

void Replication::take_peers(ReplicaTrees& trees, bool recover) {
  const auto peers = peers_of(trees);
  if (!incarnation_) {
    incarnation_ = std::make_unique<Incarnation>(store_, peers, recover);
    // A directory that may have lost data learns every peer's floors before it takes replicated
    // writes (node/floors.hpp). (--unsafe-serve-at-once, the broken mode, counts at once in
    // everything: no learning either.)
    floors_ = std::make_unique<Floors>(store_, peers, !incarnation_->serving() && !options_.unsafe_serve_at_once);
  } else {
    incarnation_->set_peers(peers);
    floors_->set_peers(peers);
  }
  trees.set_floors(floors_.get());
  trees.set_purge_pause(&pause_);
}

std::shared_ptr<Replication::Part> Replication::make_part(std::shared_ptr<ReplicaTrees> trees, std::string fingerprint) {
  auto part = std::make_shared<Part>();
  part->fingerprint = std::move(fingerprint);
  part->trees = std::move(trees);
  if (part->trees && options_.exchanges)
    part->exchanger = std::make_shared<AntiEntropy>(store_, *part->trees, options_.exchange, incarnation_.get());
  return part;
}

void Replication::take(std::shared_ptr<Part> part) {
  auto role = std::make_shared<NodeRole>();
  role->ring = part->fingerprint;
  role->trees = part->trees;
  if (part->trees) {
    role->incarnation = incarnation_.get();
    role->floors = floors_.get();
  }
  if (part->exchanger)
    role->health = [exchanger = part->exchanger, trees = part->trees] { return exchanger->health_fields(); };
  part_ = std::move(part);
  publish_(std::move(role));
}

void Replication::start(std::shared_ptr<const Ring> ring, std::uint32_t self, std::string fingerprint, bool recover) {
  std::shared_ptr<ReplicaTrees> trees;
  if (ring) store_.set_observer(observer_.get());  // before any write: a ring adopted later may replicate
  if (ring && ring->replicas() > 1) {
    if (recover) {
      const HashRange everything{0, ~std::uint64_t{0}};
      std::string err;
      if (store_.drop({&everything, 1}, true, true, err) != StoreStatus::ok) throw StoreError("--recover: discarding the data: " + err);
      std::cerr << "kvnode: --recover: this directory's data discarded; rebuilding it from the peers" << std::endl;
    }
    const auto began = std::chrono::steady_clock::now();
    trees = std::make_shared<ReplicaTrees>(ring, self);
    const std::uint64_t keys = trees->build(store_);
    std::cerr << "kvnode: hash trees of " << trees->sets().size() << " replica sets built from " << keys << " keys in "
              << ms_since(began) << " ms" << std::endl;
    take_peers(*trees, recover);
  } else if (ring) {
    std::cerr << "kvnode: anti-entropy off: the ring has replicas: 1" << std::endl;
  }
  observer_->follow({trees, nullptr});
  std::lock_guard lock(mutex_);
  take(make_part(std::move(trees), std::move(fingerprint)));
}

void Replication::serve() {
  std::lock_guard lock(mutex_);
  serving_ = true;
  if (part_->exchanger) part_->exchanger->start();
}

void Replication::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  if (adopter_.joinable()) adopter_.join();
  std::shared_ptr<Part> part;
  {
    std::lock_guard lock(mutex_);
    part = part_;
  }
  if (part && part->exchanger) part->exchanger->stop();
}

Replication::Adoption Replication::adopt(std::shared_ptr<const Ring> ring, std::uint32_t self, std::string fingerprint,
                                         const std::function<void()>& prepare) {
  std::lock_guard lock(mutex_);
  if (!adopting_.empty()) return fingerprint == adopting_ ? Adoption::ongoing : Adoption::busy;
  if (stopping_) return Adoption::busy;
  if (fingerprint == part_->fingerprint) return Adoption::current;
  prepare();
  // The one before has ended: it cleared adopting_, its last step under the lock.
  if (adopter_.joinable()) adopter_.join();
  adopting_ = fingerprint;
  adopter_ = std::thread([this, ring = std::move(ring), self, fingerprint = std::move(fingerprint)] {
    adopt_now(ring, self, fingerprint);
  });
  return Adoption::started;
}

void Replication::adopt_now(std::shared_ptr<const Ring> ring, std::uint32_t self, std::string fingerprint) {
  const auto began = std::chrono::steady_clock::now();
  const auto old = observer_->target();
  std::shared_ptr<Part> was;
  {
    std::lock_guard lock(mutex_);
    was = part_;
  }
  bool stopped_old = false;
  std::string why;
  try {
    std::shared_ptr<ReplicaTrees> trees;
    if (ring->replicas() > 1) {
      // 1. The new trees, from the store as it is written to.
      trees = std::make_shared<ReplicaTrees>(ring, self);
      auto builder = std::make_shared<TreeBuilder>(*trees);
      observer_->follow({old->trees, builder});
      const auto keys = builder->build(store_, stopping_);
      if (!keys) throw StoreError("stopped while building the hash trees");
      std::cerr << "kvnode: hash trees of " << trees->sets().size() << " replica sets of the new ring built from " << *keys
                << " keys in " << ms_since(began) << " ms, serving meanwhile" << std::endl;
    }
    // 2. No exchange by the old ring's sets from here; the new peers.
    if (was->exchanger) was->exchanger->stop();
    stopped_old = true;
    if (trees) {
      take_peers(*trees, false);
    } else {
      std::cerr << "kvnode: anti-entropy off: the ring has replicas: 1" << std::endl;
    }
    // 3. The observer moves to the new trees; 4. the new role.
    auto part = make_part(trees, fingerprint);
    observer_->follow({std::move(trees), nullptr});
    std::lock_guard lock(mutex_);
    take(part);
    if (serving_ && part->exchanger) part->exchanger->start();
    adopting_.clear();
    std::cerr << "kvnode: runs on the ring " << fingerprint << " now, adopted in place in " << ms_since(began) << " ms"
              << std::endl;
    return;
  } catch (const std::exception& e) {
    why = e.what();
  }
  // Still on the old ring: its trees followed every change throughout.
  observer_->follow(*old);
  std::lock_guard lock(mutex_);
  if (stopped_old) {
    auto part = make_part(was->trees, was->fingerprint);
    take(part);
    if (serving_ && part->exchanger) part->exchanger->start();
  }
  adopting_.clear();
  std::cerr << "kvnode: adopting the ring " << fingerprint << " failed, still on the ring it was on: " << why << std::endl;
}

std::string Replication::metrics() const {
  std::lock_guard lock(mutex_);
  return part_ && part_->exchanger ? part_->exchanger->render() : std::string();
}

}  // namespace kv
