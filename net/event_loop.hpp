// One thread's event loop for kvproxy's data path: epoll, non-blocking sockets, and nothing between
// the kernel's readiness and the code that acts on it. Asio, which kvnode and kvproxy's admin side
// use, allocates an operation per read, queues its completion and resumes a coroutine frame; at
// tens of thousands of requests a second that was most of kvproxy's user time (bench/NOTES.md).
// Here a socket is registered once, edge-triggered, and its Handler is called with the events.
//
// Everything but post() and stop() is for the loop's own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace kv::net {

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;

  class Handler {
   public:
    virtual ~Handler() = default;
    // The events epoll reported (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP...).
    virtual void on_events(std::uint32_t events) = 0;

   private:
    friend class EventLoop;
    bool retired_ = false;
  };

  EventLoop();  // throws std::system_error
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // epoll_ctl; throw std::system_error. A descriptor leaves the set when it is closed.
  void add(int fd, Handler& h, std::uint32_t events);
  void modify(int fd, Handler& h, std::uint32_t events);
  void remove(int fd) noexcept;
  // Destroys `h` once the current batch of events is done: events already taken for it are dropped,
  // so a handler may retire itself or another from inside on_events().
  void retire(std::unique_ptr<Handler> h);

  // Thread-safe: runs fn on the loop's thread, in order, soon.
  void post(std::function<void()> fn);
  // Calls `tick` about every `interval` and handles events until stop().
  void run(std::chrono::milliseconds interval, const std::function<void()>& tick);
  void stop();  // thread-safe

  // When the current batch of events began: for deadlines (good to a batch), not for measuring.
  Clock::time_point now() const noexcept { return now_; }

 private:
  void run_posted();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: post() and stop() from other threads
  Clock::time_point now_ = Clock::now();
  std::vector<std::unique_ptr<Handler>> retired_;
  std::mutex mutex_;
  std::vector<std::function<void()>> posted_;  // under mutex_
  std::atomic<bool> stop_{false};
};

}  // namespace kv::net
