#include "node/floors.hpp"

#include <charconv>
#include <iostream>

namespace kv {

namespace ae = anti_entropy;

namespace {

constexpr std::string_view kFloorPrefix = "node/floor/", kLearnKey = "node/floors_learned";
constexpr std::string_view kLearning = "learning", kKnown = "known";

std::string floor_key(std::uint32_t segment) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string k(kFloorPrefix);
  for (int shift = 12; shift >= 0; shift -= 4) k.push_back(kHex[(segment >> shift) & 0xf]);
  return k;
}

}  // namespace

Floors::Floors(Store& store, std::vector<std::string> peers, bool learn)
    : store_(store), peers_(std::move(peers)), floors_(new std::atomic<std::uint64_t>[ae::kSegments]) {
  for (std::uint32_t s = 0; s < ae::kSegments; ++s) floors_[s].store(0, std::memory_order_relaxed);
  std::size_t n = 0;
  for (const auto& [key, value] : store_.metas(kFloorPrefix)) {
    std::uint32_t segment = 0;
    std::uint64_t floor = 0;
    const std::string_view hex = std::string_view(key).substr(kFloorPrefix.size());
    const auto whole = [](std::string_view text, auto& out, int base) {
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
      return ec == std::errc() && end == text.data() + text.size() && !text.empty();
    };
    if (!whole(hex, segment, 16) || segment >= ae::kSegments || !whole(value, floor, 10))
      throw StoreError("meta record " + key + ": not a segment floor: '" + value + "'");
    floors_[segment].store(floor, std::memory_order_relaxed);
    n += floor > 0 ? 1 : 0;
  }
  segments_.store(n, std::memory_order_relaxed);
  if (learn) store_.set_meta(kLearnKey, kLearning);
  const bool learning = !peers_.empty() && store_.meta(kLearnKey) == kLearning;
  if (!learning && learn) store_.set_meta(kLearnKey, kKnown);  // nobody to learn from
  known_.store(!learning, std::memory_order_release);
  if (learning)
    std::cerr << "kvnode: learning the segment floors of " << peers_.size()
              << " peers before taking replicated writes (a new data directory)" << std::endl;
}

void Floors::raise(const std::vector<ae::SegmentFloor>& floors) {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> records;
  for (const auto& f : floors) {
    if (f.segment >= ae::kSegments) continue;
    auto& slot = floors_[f.segment];
    const std::uint64_t was = slot.load(std::memory_order_relaxed);
    if (f.floor <= was) continue;
    slot.store(f.floor, std::memory_order_release);
    if (was == 0) segments_.fetch_add(1, std::memory_order_relaxed);
    records.emplace_back(floor_key(f.segment), std::to_string(f.floor));
  }
  // Every raise moves the generation, changed or not: it comes before a purge's drops, and a pull
  // asked for before them must be checked against the floors (admits()).
  generation_.fetch_add(1, std::memory_order_acq_rel);
  if (!records.empty()) store_.set_metas(records);
}

std::vector<ae::SegmentFloor> Floors::all() const {
  std::vector<ae::SegmentFloor> out;
  for (std::uint32_t s = 0; s < ae::kSegments; ++s)
    if (const auto f = floors_[s].load(std::memory_order_acquire)) out.push_back({s, f});
  return out;
}

void Floors::learned_from(std::string_view peer) {
  std::lock_guard lock(mutex_);
  if (known()) return;
  learned_.insert(std::string(peer));
  if (learned_.size() < peers_.size()) return;
  store_.set_meta(kLearnKey, kKnown);
  known_.store(true, std::memory_order_release);
  std::cerr << "kvnode: the segment floors of every peer learned: taking replicated writes" << std::endl;
}

std::size_t Floors::peer_count() const {
  std::lock_guard lock(mutex_);
  return peers_.size();
}

void Floors::set_peers(std::vector<std::string> peers) {
  std::lock_guard lock(mutex_);
  peers_ = std::move(peers);
  if (known()) return;
  learned_.clear();
  if (!peers_.empty()) return;
  store_.set_meta(kLearnKey, kKnown);  // nobody to learn from
  known_.store(true, std::memory_order_release);
}

std::size_t Floors::peers_learned() const {
  std::lock_guard lock(mutex_);
  return known() ? peers_.size() : learned_.size();
}

}  // namespace kv
