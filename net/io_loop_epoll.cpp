// IoLoop over epoll: each socket registered once, edge-triggered. A recv waits for readiness, then
// reads once; a send writes at once and waits for EPOLLOUT only for what the kernel did not take.
// Results are queued and handed to the handlers after the call that asked for them returns.
#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "net/io_loop.hpp"
#include "net/posted.hpp"

namespace kv::net {

namespace {

constexpr std::size_t kMinRecv = 4096;  // free space a buffer is given before each recv

class EpollLoop;

class EpollChannel final : public Channel {
 public:
  EpollChannel(EpollLoop& loop, int fd, ChannelHandler& h) : Channel(fd), loop_(loop), handler_(&h) {}
  ~EpollChannel() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void recv(IoBuffer& into) override;
  void send(std::string_view data) override;
  void connect(const sockaddr* address, socklen_t size) override;
  void close(bool graceful) override;

  void on_events(std::uint32_t events);
  // Does what can be done now and hands results to the handler: one result per operation.
  void service();
  bool closed() const noexcept { return handler_ == nullptr; }
  bool queued = false;  // on the loop's list of channels to service

 private:
  void try_send();

  EpollLoop& loop_;
  ChannelHandler* handler_;
  bool readable_ = false;  // an edge came and recv has not since come back empty
  bool peer_closed_ = false;  // its FIN came (EPOLLRDHUP): a recv ends at once, with 0, once the data is read
  bool writable_ = true;
  IoBuffer* rx_ = nullptr;  // a recv outstanding into this
  std::string_view tx_;     // a send outstanding: what is left of it
  bool tx_on_ = false;
  int tx_result_ = 1;       // 1: not done yet; else the result to give
  bool connecting_ = false;
  int connect_result_ = 1;  // 1: not done yet
};

class EpollLoop final : public IoLoop {
 public:
  EpollLoop();
  ~EpollLoop() override;
  const char* name() const noexcept override { return "epoll"; }
  Channel* open(int fd, ChannelHandler& handler) override;
  void set_listener(int listen_fd, bool exclusive, std::function<void(int)> on_accept) override;
  void accepting(bool on) override;
  void post(std::function<void()> fn) override { posted_.post(std::move(fn)); }
  void run(std::chrono::milliseconds interval, const std::function<void()>& tick,
           const std::function<void()>& after_batch) override;
  void stop() override { posted_.stop(); }

  void want_service(EpollChannel* c) {
    if (c->queued) return;
    c->queued = true;
    ready_.push_back(c);
  }
  void retire(EpollChannel* c) {
    live_.erase(c);
    retired_.emplace_back(c);
  }

 private:
  void service_ready();

  int epoll_fd_ = -1;
  Posted posted_;
  int listen_fd_ = -1;
  bool exclusive_ = false;
  bool accepting_ = false;
  std::function<void(int)> on_accept_;
  std::vector<EpollChannel*> ready_, servicing_;
  std::vector<std::unique_ptr<EpollChannel>> retired_;
  std::unordered_set<EpollChannel*> live_;  // open channels: whatever is left goes with the loop
};

// The listener's and the wake-up descriptor's events carry these in place of a channel.
EpollChannel* const kListenerTag = reinterpret_cast<EpollChannel*>(std::uintptr_t{1});
EpollChannel* const kWakeTag = nullptr;

void EpollChannel::recv(IoBuffer& into) {
  rx_ = &into;
  if (readable_) loop_.want_service(this);
}

void EpollChannel::send(std::string_view data) {
  tx_ = data;
  tx_on_ = true;
  tx_result_ = 1;
  // At once: most messages fit the socket's buffer, and going out now beats going out later.
  try_send();
  if (tx_result_ != 1) loop_.want_service(this);
}

void EpollChannel::try_send() {
  while (!tx_.empty() && writable_) {
    const ssize_t n = ::send(fd_, tx_.data(), tx_.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      tx_.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      writable_ = false;  // EPOLLOUT brings the rest
      return;
    }
    tx_result_ = -errno;
    return;
  }
  if (tx_.empty()) tx_result_ = 0;
}

void EpollChannel::connect(const sockaddr* address, socklen_t size) {
  connecting_ = true;
  connect_result_ = 1;
  if (::connect(fd_, address, size) == 0) connect_result_ = 0;
  else if (errno != EINPROGRESS) connect_result_ = -errno;
  writable_ = false;  // EPOLLOUT says when it is done
  if (connect_result_ != 1) loop_.want_service(this);
}

void EpollChannel::close(bool graceful) {
  if (closed()) return;
  handler_ = nullptr;
  if (graceful) ::shutdown(fd_, SHUT_WR);
  ::close(fd_);  // leaves the epoll set
  fd_ = -1;
  loop_.retire(this);
}

void EpollChannel::on_events(std::uint32_t events) {
  if (closed()) return;
  // An error or a hang-up is for whichever operation is waiting to find.
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLRDHUP | EPOLLHUP)) peer_closed_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
  service();
}

void EpollChannel::service() {
  if (connecting_ && connect_result_ == 1 && writable_) {
    int error = 0;
    socklen_t len = sizeof error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
    connect_result_ = -error;
  }
  if (connecting_ && connect_result_ != 1) {
    connecting_ = false;
    writable_ = true;
    handler_->on_connected(connect_result_);
    if (closed()) return;
  }
  if (tx_on_) {
    if (tx_result_ == 1) try_send();
    if (tx_result_ != 1) {
      tx_on_ = false;
      handler_->on_sent(tx_result_);
      if (closed()) return;
    }
  }
  if (rx_ && readable_) {
    const auto space = rx_->prepare(loop_.blocks(), kMinRecv);
    const ssize_t n = ::recv(fd_, space.data(), space.size(), 0);
    long result;
    if (n > 0) {
      rx_->commit(static_cast<std::size_t>(n));
      // Drained: the next bytes bring an edge. But a FIN that came with these bytes brings none.
      if (static_cast<std::size_t>(n) < space.size() && !peer_closed_) readable_ = false;
      result = n;
    } else if (n == 0) {
      result = 0;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      return;
    } else if (errno == EINTR) {
      loop_.want_service(this);
      return;
    } else {
      result = -errno;
    }
    rx_ = nullptr;
    handler_->on_recv(result);
  }
}

EpollLoop::EpollLoop() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.ptr = kWakeTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, posted_.fd(), &e) != 0) {
    const int error = errno;
    ::close(epoll_fd_);
    throw std::system_error(error, std::generic_category(), "epoll_ctl");
  }
}

EpollLoop::~EpollLoop() {
  for (EpollChannel* c : live_) delete c;
  ::close(epoll_fd_);
}

Channel* EpollLoop::open(int fd, ChannelHandler& handler) {
  set_nonblocking(fd);
  auto* c = new EpollChannel(*this, fd, handler);
  epoll_event e{};
  e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  e.data.ptr = c;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &e) != 0) {
    const int error = errno;
    delete c;  // closes fd
    throw std::system_error(error, std::generic_category(), "epoll_ctl add");
  }
  live_.insert(c);
  return c;
}

void EpollLoop::set_listener(int listen_fd, bool exclusive, std::function<void(int)> on_accept) {
  listen_fd_ = listen_fd;
  exclusive_ = exclusive;
  on_accept_ = std::move(on_accept);
}

void EpollLoop::accepting(bool on) {
  if (on == accepting_ || listen_fd_ < 0) return;
  accepting_ = on;
  if (!on) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    return;
  }
  // Level-triggered, so that a backlog left while accepting was off is seen at once. With several
  // loops on one listener, EPOLLEXCLUSIVE wakes one of them per connection, not all.
  epoll_event e{};
  e.events = EPOLLIN | (exclusive_ ? EPOLLEXCLUSIVE : 0u);
  e.data.ptr = kListenerTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &e) != 0) accepting_ = false;
}

void EpollLoop::service_ready() {
  while (!ready_.empty()) {
    servicing_.swap(ready_);
    for (EpollChannel* c : servicing_) {
      c->queued = false;
      if (!c->closed()) c->service();
    }
    servicing_.clear();
  }
}

void EpollLoop::run(std::chrono::milliseconds interval, const std::function<void()>& tick,
                    const std::function<void()>& after_batch) {
  std::array<epoll_event, 256> events;
  now_ = Clock::now();
  auto next_tick = now_ + interval;
  while (!posted_.stopped()) {
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_tick - now_).count();
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                               ready_.empty() && wait > 0 ? static_cast<int>(wait) : 0);
    now_ = Clock::now();
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_wait");
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<EpollChannel*>(events[i].data.ptr);
      if (c == kWakeTag) {
        posted_.run();
      } else if (c == kListenerTag) {
        for (int k = 0; k < 64 && accepting_; ++k) {  // then let the connections already open have their turn
          const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) on_accept_(-errno);
            break;
          }
          on_accept_(fd);
        }
      } else {
        c->on_events(events[i].events);
      }
      service_ready();
    }
    service_ready();
    after_batch();
    retired_.clear();
    if (now_ >= next_tick) {
      tick();
      service_ready();
      after_batch();
      retired_.clear();
      next_tick = now_ + interval;
    }
  }
  retired_.clear();
}

}  // namespace

std::unique_ptr<IoLoop> make_epoll_loop() { return std::make_unique<EpollLoop>(); }

}  // namespace kv::net
