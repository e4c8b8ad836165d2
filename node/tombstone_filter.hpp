// Which stored keys may hold a tombstone record, kept by the RocksDB engine in memory so that an
// untagged put over a key without one can be a blind write (node/store_rocksdb.cpp says why).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kv {

// A count of tombstone records per bucket of the ring hash's low 20 bits. A key whose bucket counts
// none holds no tombstone record. Exact as long as every tombstone record added or removed goes
// through add()/remove(), which the writes do (each knows: it read what the key held; the counts
// follow a batch as it is staged, and a batch that fails stops every write until a restart rebuilds
// them); a bucket that reaches 255 stays there ("may"). Bucket b belongs to lock stripe b % 64 (the
// same low bits), so a bucket is touched only in the atomic step of its keys' writes: under its
// stripe, or on the committer thread. The total is read by anyone.
class TombstoneFilter {
 public:
  bool may_hold(std::string_view key) const noexcept { return counts_[bucket(key)] != 0; }
  void add(std::string_view key) noexcept {
    auto& c = counts_[bucket(key)];
    if (c != kStuck) ++c;
    total_.fetch_add(1, std::memory_order_relaxed);
  }
  void remove(std::string_view key) noexcept {
    auto& c = counts_[bucket(key)];
    if (c != kStuck && c != 0) --c;
    total_.fetch_sub(1, std::memory_order_relaxed);
  }
  std::uint64_t total() const noexcept { return total_.load(std::memory_order_relaxed); }

 private:
  static constexpr unsigned kBits = 20;
  static constexpr std::uint8_t kStuck = 255;
  // Bytes 5-7 of the stored key: the low bits of its ring hash (common/storage_key.hpp).
  static std::size_t bucket(std::string_view key) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(key[i])); };
    return ((byte(5) << 16) | (byte(6) << 8) | byte(7)) & ((std::size_t{1} << kBits) - 1);
  }
  std::vector<std::uint8_t> counts_ = std::vector<std::uint8_t>(std::size_t{1} << kBits);
  std::atomic<std::uint64_t> total_{0};
};

}  // namespace kv
