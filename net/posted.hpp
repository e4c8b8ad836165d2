// What both IoLoop implementations need: functions posted from other threads, woken through an
// eventfd, and the stop flag.
#pragma once

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <mutex>
#include <system_error>
#include <vector>

namespace kv::net {

class Posted {
 public:
  Posted() {
    fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  ~Posted() { ::close(fd_); }
  Posted(const Posted&) = delete;
  Posted& operator=(const Posted&) = delete;

  int fd() const noexcept { return fd_; }  // readable while there is something to run
  void post(std::function<void()> fn) {
    bool first;
    {
      std::lock_guard lock(mutex_);
      first = queue_.empty();
      queue_.push_back(std::move(fn));
    }
    if (first) wake();
  }
  void stop() {
    stop_.store(true, std::memory_order_release);
    wake();
  }
  bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }
  // Reads the eventfd and runs what was posted (on the loop's thread).
  void run() {
    std::uint64_t count;
    [[maybe_unused]] const auto n = ::read(fd_, &count, sizeof count);
    run_queue();
  }
  // Runs what was posted, the eventfd read already.
  void run_queue() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(queue_);
    }
    for (auto& fn : batch) fn();
  }

 private:
  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
  }

  int fd_ = -1;
  std::mutex mutex_;
  std::vector<std::function<void()>> queue_;  // under mutex_
  std::atomic<bool> stop_{false};
};

inline void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace kv::net
