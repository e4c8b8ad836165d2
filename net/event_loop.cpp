#include "event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace kv::net {

namespace {

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

}  // namespace

EventLoop::EventLoop() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) fail("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    ::close(epoll_fd_);
    fail("eventfd");
  }
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.ptr = nullptr;  // the wake-up descriptor: no handler
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &e) != 0) {
    ::close(wake_fd_);
    ::close(epoll_fd_);
    fail("epoll_ctl");
  }
}

EventLoop::~EventLoop() {
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void EventLoop::add(int fd, Handler& h, std::uint32_t events) {
  epoll_event e{};
  e.events = events;
  e.data.ptr = &h;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &e) != 0) fail("epoll_ctl add");
}

void EventLoop::modify(int fd, Handler& h, std::uint32_t events) {
  epoll_event e{};
  e.events = events;
  e.data.ptr = &h;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &e) != 0) fail("epoll_ctl mod");
}

void EventLoop::remove(int fd) noexcept { ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::retire(std::unique_ptr<Handler> h) {
  h->retired_ = true;
  retired_.push_back(std::move(h));
}

void EventLoop::post(std::function<void()> fn) {
  bool first;
  {
    std::lock_guard lock(mutex_);
    first = posted_.empty();
    posted_.push_back(std::move(fn));
  }
  if (first) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

void EventLoop::stop() {
  stop_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void EventLoop::run_posted() {
  std::uint64_t count;
  [[maybe_unused]] const auto n = ::read(wake_fd_, &count, sizeof count);
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::run(std::chrono::milliseconds interval, const std::function<void()>& tick) {
  std::array<epoll_event, 256> events;
  now_ = Clock::now();
  auto next_tick = now_ + interval;
  for (;;) {
    if (stop_.load(std::memory_order_acquire)) break;
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_tick - now_).count();
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                               wait > 0 ? static_cast<int>(wait) : 0);
    now_ = Clock::now();
    if (n < 0 && errno != EINTR) fail("epoll_wait");
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<Handler*>(events[i].data.ptr);
      if (!h) {
        run_posted();
      } else if (!h->retired_) {
        h->on_events(events[i].events);
      }
    }
    retired_.clear();
    if (now_ >= next_tick) {
      tick();
      retired_.clear();
      next_tick = now_ + interval;
    }
  }
  retired_.clear();
}

}  // namespace kv::net
