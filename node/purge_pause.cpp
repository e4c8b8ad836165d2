#include "node/purge_pause.hpp"

#include <iostream>

#include "common/json.hpp"

namespace kv {

namespace {
constexpr std::string_view kPausedKey = "node/purges_paused";
constexpr std::string_view kResumedKey = "node/purges_resumed";

// A change as a JSON value: a string, or null for none.
std::string change_json(const std::string& change) { return change.empty() ? std::string("null") : json_quote(change); }
}  // namespace

PurgePause::PurgePause(Store& store)
    : store_(store), change_(store.meta(kPausedKey)), resumed_(store.meta(kResumedKey)) {
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

bool PurgePause::resume(std::string_view change) {
  std::lock_guard lock(mutex_);
  if (!change_.empty() && change_ != change) return false;
  if (change_.empty() && resumed_ == change) return true;
  const std::pair<std::string, std::string> records[] = {{std::string(kPausedKey), ""},
                                                         {std::string(kResumedKey), std::string(change)}};
  store_.set_metas(records);  // both in one durable write
  if (!change_.empty()) std::cerr << "kvnode: tombstone purges resumed (the ring change " << change_ << " ended)" << std::endl;
  change_.clear();
  resumed_ = change;
  return true;
}

std::string PurgePause::paused() const {
  std::lock_guard lock(mutex_);
  return change_;
}

std::string PurgePause::resumed() const {
  std::lock_guard lock(mutex_);
  return resumed_;
}

std::string PurgePause::paused_json() const { return change_json(paused()); }

std::string PurgePause::resumed_json() const { return change_json(resumed()); }

}  // namespace kv
