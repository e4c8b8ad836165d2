// The anti-entropy pull's bounds (node/anti_entropy.hpp), changeable while the node runs: kvnode's
// --repair-busy-percent and --repair-keys-per-second set them at the start, POST /admin/repair
// later (node/admin_api.hpp), as an operator slows a rebuild that costs the clients too much, or
// speeds one up at a quiet hour. One object per node, shared by its exchangers (a ring adopted
// starts another exchanger, which keeps the bounds set). An exchanger reads the bounds before each
// rest and again while it rests, so that a new bound takes effect within a batch. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

namespace kv {

class RepairRate {
 public:
  // busy_percent: 1 to 100 (100: no bound); keys_per_second: 0 for no bound.
  RepairRate(std::uint32_t busy_percent, std::uint32_t keys_per_second) noexcept
      : busy_percent_(busy_percent), keys_per_second_(keys_per_second) {}

  std::uint32_t busy_percent() const noexcept { return busy_percent_.load(std::memory_order_relaxed); }
  std::uint32_t keys_per_second() const noexcept { return keys_per_second_.load(std::memory_order_relaxed); }
  void set_busy_percent(std::uint32_t p) noexcept { busy_percent_.store(p, std::memory_order_relaxed); }
  void set_keys_per_second(std::uint32_t k) noexcept { keys_per_second_.store(k, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint32_t> busy_percent_;
  std::atomic<std::uint32_t> keys_per_second_;
};

}  // namespace kv
