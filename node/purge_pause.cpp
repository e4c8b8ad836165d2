#include "node/purge_pause.hpp"

#include <iostream>

namespace kv {

namespace {
constexpr std::string_view kPausedKey = "node/purges_paused";
}  // namespace

PurgePause::PurgePause(Store& store) : store_(store), change_(store.meta(kPausedKey)) {
  if (!change_.empty())
    std::cerr << "kvnode: tombstone purges paused for the ring change " << change_
              << " (ring-rebalance apply resumes them when it ends)" << std::endl;
}

PurgePause::Turn PurgePause::enter() {
  std::lock_guard lock(mutex_);
  if (!change_.empty()) return Turn();
  ++turns_;
  return Turn(this);
}

void PurgePause::leave() noexcept {
  std::lock_guard lock(mutex_);
  if (--turns_ == 0) idle_.notify_all();
}

void PurgePause::pause(std::string_view change) {
  std::unique_lock lock(mutex_);
  if (change_ != change) {
    store_.set_meta(kPausedKey, change);  // durable before any purge is refused or waited for
    const bool was = !change_.empty();
    change_ = change;
    if (!was) std::cerr << "kvnode: tombstone purges paused for the ring change " << change_ << std::endl;
  }
  idle_.wait(lock, [this] { return turns_ == 0; });
}

void PurgePause::resume() {
  std::lock_guard lock(mutex_);
  if (change_.empty()) return;
  store_.set_meta(kPausedKey, "");
  std::cerr << "kvnode: tombstone purges resumed (the ring change " << change_ << " ended)" << std::endl;
  change_.clear();
}

std::string PurgePause::paused() const {
  std::lock_guard lock(mutex_);
  return change_;
}

}  // namespace kv
