// A shared_ptr that threads read and replace at once (what std::atomic<std::shared_ptr> is for), and
// the spin lock it is built on. Why not those of the standard library: ThreadSanitizer does not see
// libstdc++'s atomic<shared_ptr> synchronize (its lock is a bit of the pointer), and kvnode takes
// these on a write's path with all 64 of the store's stripe locks held, one more lock than the
// sanitizer's deadlock detector can track; a spin lock on an atomic is neither. Each is held for a
// pointer copy (or a short step of the caller's), so it yields rather than sleeps.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

namespace kv {

class SpinLock {
 public:
  void lock() noexcept {
    while (held_.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
  }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

template <class T>
class SharedSlot {
 public:
  SharedSlot() = default;
  explicit SharedSlot(std::shared_ptr<T> p) : p_(std::move(p)) {}

  std::shared_ptr<T> load() const noexcept {
    std::lock_guard lock(lock_);
    return p_;
  }
  void store(std::shared_ptr<T> p) noexcept {
    {
      std::lock_guard lock(lock_);
      p_.swap(p);
    }
    // the old one released here, outside the lock (its destructor may run anything)
  }

 private:
  mutable SpinLock lock_;
  std::shared_ptr<T> p_;
};

}  // namespace kv
