// Listening sockets, and the policy on accepting, written once for both stacks (kvproxy's data path
// on net/io_loop, and the Asio frame of net/server): the same bind, and one AcceptGate that holds at
// most `maxconn` connections open at once (more wait in the kernel's backlog, not in our memory) and
// pauses accepting for a moment after accept() fails (EMFILE and the like) instead of spinning.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/config.hpp"

namespace kv::net {

struct Listening {
  int fd = -1;  // non-blocking, close-on-exec; the caller owns it
  std::uint16_t port = 0;
  int family = 0;  // AF_INET or AF_INET6
};

// Binds `address` (an IP literal; port 0 takes any free port) with SO_REUSEADDR and listens with
// the largest backlog. Throws std::runtime_error("cannot listen on H:P: reason").
Listening open_listener(const HostPort& address);

class AcceptGate {
 public:
  using Clock = std::chrono::steady_clock;

  explicit AcceptGate(std::size_t maxconn = 0) : maxconn_(maxconn) {}  // 0: no limit

  // Thread-safe: a connection from this listener opened, or closed.
  void opened() noexcept { open_.fetch_add(1, std::memory_order_relaxed); }
  void closed() noexcept { open_.fetch_sub(1, std::memory_order_relaxed); }
  std::size_t open() const noexcept { return open_.load(std::memory_order_relaxed); }
  bool full() const noexcept { return maxconn_ && open() >= maxconn_; }

  // accept() failed with `error` (an errno other than "nothing to accept"): logs "NAME: accept:
  // reason" and pauses accepting for kAcceptBackoff. Returns when the pause ends.
  Clock::time_point failed(std::string_view name, int error, Clock::time_point now);
  // Whether to accept now: not full and not pausing.
  bool may_accept(Clock::time_point now) const noexcept {
    return !full() && now >= Clock::time_point(Clock::duration(pause_until_.load(std::memory_order_relaxed)));
  }

 private:
  const std::size_t maxconn_;
  std::atomic<std::size_t> open_{0};
  std::atomic<Clock::rep> pause_until_{0};
};

}  // namespace kv::net
