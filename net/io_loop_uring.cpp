// IoLoop over io_uring. Each turn of the loop hands the kernel every operation the handlers asked
// for since the last one and waits for completions, in one io_uring_enter. Receives take their
// buffer from a ring of buffers the loop provides (IOSQE_BUFFER_SELECT), so an idle connection
// waiting for its next request holds none; what arrives is copied into the connection's own buffer
// and the provided one goes straight back. The ring is single-issuer with deferred task work: the
// kernel does the completion work of this thread's operations only when this thread enters, in
// the same system call as the submission.
#include <liburing.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <unordered_set>
#include <vector>

#include "net/io_loop.hpp"
#include "net/posted.hpp"

namespace kv::net {

namespace {

constexpr unsigned kEntries = 4096;     // submission queue; the completion queue is twice that
constexpr unsigned kBuffers = 256;      // provided receive buffers (a power of two)
constexpr unsigned kBufferSize = 16 * 1024;
constexpr unsigned kGroup = 0;

// What a completion is for: the low three bits of its user_data (channels are 8-byte aligned).
enum Op : std::uint64_t { kRecv = 1, kSend = 2, kConnect = 3, kCancel = 4, kAccept = 5, kWake = 6, kCancelAccept = 7 };

class UringLoop;

class UringChannel final : public Channel {
 public:
  UringChannel(UringLoop& loop, int fd, ChannelHandler& h) : Channel(fd), loop_(loop), handler_(&h) {}
  ~UringChannel() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void recv(IoBuffer& into) override;
  void send(std::string_view data) override;
  void connect(const sockaddr* address, socklen_t size) override;
  void close(bool graceful) override;

  void complete(Op op, int result, unsigned flags);
  void submit_recv();
  bool closed() const noexcept { return handler_ == nullptr; }

 private:
  io_uring_sqe* sqe(Op op);
  void submit_send();
  void finish_close();

  UringLoop& loop_;
  ChannelHandler* handler_;
  IoBuffer* rx_ = nullptr;
  std::string_view tx_;  // what is left of the send outstanding
  sockaddr_storage address_{};
  int ops_ = 0;  // operations the kernel holds: their completions name this channel
};

class UringLoop final : public IoLoop {
 public:
  UringLoop();
  ~UringLoop() override;
  const char* name() const noexcept override { return "io_uring"; }
  Channel* open(int fd, ChannelHandler& handler) override {
    set_nonblocking(fd);
    auto* c = new UringChannel(*this, fd, handler);
    live_.insert(c);
    return c;
  }
  void set_listener(int listen_fd, bool exclusive, std::function<void(int)> on_accept) override {
    (void)exclusive;  // each loop's multishot accept takes its own connections
    listen_fd_ = listen_fd;
    on_accept_ = std::move(on_accept);
  }
  void accepting(bool on) override;
  void post(std::function<void()> fn) override { posted_.post(std::move(fn)); }
  void run(std::chrono::milliseconds interval, const std::function<void()>& tick,
           const std::function<void()>& after_batch) override;
  void stop() override { posted_.stop(); }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (!s) {  // full: hand what is there to the kernel now
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
      if (!s) throw std::runtime_error("io_uring: no submission entry");
    }
    return s;
  }
  const char* buffer(unsigned id) const noexcept { return buffers_ + std::size_t{id} * kBufferSize; }
  void give_back(unsigned id) {
    io_uring_buf_ring_add(buf_ring_, const_cast<char*>(buffer(id)), kBufferSize, static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(kBuffers), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
  }
  void starved(UringChannel* c) { starved_.push_back(c); }
  void retire(UringChannel* c) {
    live_.erase(c);
    retired_.emplace_back(c);
  }

 private:
  void arm_wake();
  void arm_accept();
  void on_accept_completion(int result, unsigned flags);
  void end_batch(const std::function<void()>& after_batch);

  io_uring ring_{};
  io_uring_buf_ring* buf_ring_ = nullptr;
  char* buffers_ = nullptr;
  Posted posted_;
  std::uint64_t wake_value_ = 0;
  int listen_fd_ = -1;
  std::function<void(int)> on_accept_;
  bool accepting_ = false;       // wanted
  bool accept_armed_ = false;    // a multishot accept is with the kernel
  bool accept_cancelling_ = false;
  std::vector<UringChannel*> starved_;  // receives that found no provided buffer: again after the batch
  std::vector<std::unique_ptr<UringChannel>> retired_;
  // Channels not yet given back (open, or closed with operations still out): whatever is left goes
  // with the loop, after the ring (the kernel then holds nothing of theirs).
  std::unordered_set<UringChannel*> live_;
};

io_uring_sqe* UringChannel::sqe(Op op) {
  io_uring_sqe* s = loop_.sqe();
  io_uring_sqe_set_data64(s, reinterpret_cast<std::uintptr_t>(this) | op);
  ++ops_;
  return s;
}

void UringChannel::recv(IoBuffer& into) {
  rx_ = &into;
  submit_recv();
}

void UringChannel::submit_recv() {
  io_uring_sqe* s = sqe(kRecv);
  io_uring_prep_recv(s, fd_, nullptr, kBufferSize, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kGroup;
}

void UringChannel::send(std::string_view data) {
  tx_ = data;
  submit_send();
}

void UringChannel::submit_send() { io_uring_prep_send(sqe(kSend), fd_, tx_.data(), tx_.size(), MSG_NOSIGNAL); }

void UringChannel::connect(const sockaddr* address, socklen_t size) {
  std::memcpy(&address_, address, size);  // the kernel reads it when it gets to the operation
  io_uring_prep_connect(sqe(kConnect), fd_, reinterpret_cast<const sockaddr*>(&address_), size);
}

void UringChannel::close(bool graceful) {
  if (closed()) return;
  handler_ = nullptr;
  rx_ = nullptr;
  if (graceful) ::shutdown(fd_, SHUT_WR);
  if (ops_ == 0) {
    finish_close();
    return;
  }
  // The socket is closed once the kernel has given back every operation on it.
  io_uring_prep_cancel_fd(sqe(kCancel), fd_, IORING_ASYNC_CANCEL_ALL);
}

void UringChannel::finish_close() {
  ::close(fd_);
  fd_ = -1;
  loop_.retire(this);
}

void UringChannel::complete(Op op, int result, unsigned flags) {
  --ops_;
  if (op == kRecv && (flags & IORING_CQE_F_BUFFER)) {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    if (!closed() && result > 0) {
      const auto n = static_cast<std::size_t>(result);
      std::memcpy(rx_->prepare(loop_.blocks(), n).data(), loop_.buffer(id), n);
      rx_->commit(n);
    }
    loop_.give_back(id);
  }
  if (closed()) {
    if (ops_ == 0) finish_close();
    return;
  }
  switch (op) {
    case kRecv:
      if (result == -ENOBUFS) {  // every provided buffer was in use: again after this batch
        loop_.starved(this);
        return;
      }
      rx_ = nullptr;
      handler_->on_recv(result);
      break;
    case kSend:
      if (result < 0) {
        handler_->on_sent(result);
      } else {
        tx_.remove_prefix(static_cast<std::size_t>(result));
        if (tx_.empty()) handler_->on_sent(0);
        else submit_send();  // what the kernel did not take
      }
      break;
    case kConnect:
      handler_->on_connected(result);
      break;
    default:
      break;
  }
}

UringLoop::UringLoop() {
  io_uring_params p{};
  // Enabled by run(), on the loop's own thread: a single-issuer ring belongs to the thread that
  // enables it.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
  if (const int r = io_uring_queue_init_params(kEntries, &ring_, &p); r < 0)
    throw std::runtime_error(std::string("io_uring_setup: ") + std::strerror(-r));
  const std::size_t ring_bytes = kBuffers * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    io_uring_queue_exit(&ring_);
    throw std::runtime_error(std::string("io_uring: mmap: ") + std::strerror(errno));
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(buf_ring_);
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  if (const int r = io_uring_register_buf_ring(&ring_, &reg, 0); r < 0) {
    ::munmap(buf_ring_, ring_bytes);
    io_uring_queue_exit(&ring_);
    throw std::runtime_error(std::string("io_uring: provided buffers: ") + std::strerror(-r));
  }
  io_uring_buf_ring_init(buf_ring_);
  buffers_ = static_cast<char*>(::operator new(std::size_t{kBuffers} * kBufferSize, std::align_val_t{4096}));
  for (unsigned i = 0; i < kBuffers; ++i)
    io_uring_buf_ring_add(buf_ring_, buffers_ + std::size_t{i} * kBufferSize, kBufferSize, static_cast<unsigned short>(i),
                          io_uring_buf_ring_mask(kBuffers), static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, kBuffers);
}

UringLoop::~UringLoop() {
  retired_.clear();
  io_uring_queue_exit(&ring_);  // the kernel drops what it still held
  for (UringChannel* c : live_) delete c;
  ::munmap(buf_ring_, kBuffers * sizeof(io_uring_buf));
  ::operator delete(buffers_, std::align_val_t{4096});
}

void UringLoop::arm_wake() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, posted_.fd(), &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(s, kWake);
}

void UringLoop::arm_accept() {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, kAccept);
  accept_armed_ = true;
}

void UringLoop::accepting(bool on) {
  accepting_ = on;
  if (listen_fd_ < 0) return;
  if (on && !accept_armed_) {
    arm_accept();
  } else if (!on && accept_armed_ && !accept_cancelling_) {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, kAccept, 0);
    io_uring_sqe_set_data64(s, kCancelAccept);
    accept_cancelling_ = true;
  }
}

void UringLoop::on_accept_completion(int result, unsigned flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    accept_armed_ = false;
    accept_cancelling_ = false;
  }
  // A connection accepted while a cancel was on its way is served all the same.
  if (result != -ECANCELED) on_accept_(result);
  if (!accept_armed_ && accepting_) arm_accept();
}

void UringLoop::end_batch(const std::function<void()>& after_batch) {
  if (!starved_.empty()) {
    std::vector<UringChannel*> again;
    again.swap(starved_);
    for (UringChannel* c : again)
      if (!c->closed()) c->submit_recv();
  }
  after_batch();
  retired_.clear();
}

void UringLoop::run(std::chrono::milliseconds interval, const std::function<void()>& tick,
                    const std::function<void()>& after_batch) {
  // io_uring_enable_rings() is declared by liburing 2.3 but not in its library: the system call.
  if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
    throw std::runtime_error(std::string("io_uring: enable: ") + std::strerror(errno));
  arm_wake();
  now_ = Clock::now();
  auto next_tick = now_ + interval;
  while (!posted_.stopped()) {
    const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next_tick - now_).count();
    __kernel_timespec ts{};
    ts.tv_sec = wait > 0 ? wait / 1'000'000'000 : 0;
    ts.tv_nsec = wait > 0 ? wait % 1'000'000'000 : 0;
    io_uring_cqe* first = nullptr;
    const int r = io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
    now_ = Clock::now();
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY)
      throw std::runtime_error(std::string("io_uring_enter: ") + std::strerror(-r));
    unsigned head, count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++count;
      const std::uint64_t data = cqe->user_data;
      const auto op = static_cast<Op>(data & 7);
      switch (op) {
        case kWake:
          posted_.run_queue();
          arm_wake();
          break;
        case kAccept:
          on_accept_completion(cqe->res, cqe->flags);
          break;
        case kCancelAccept:
          break;
        default:
          reinterpret_cast<UringChannel*>(data & ~std::uint64_t{7})->complete(op, cqe->res, cqe->flags);
          break;
      }
    }
    io_uring_cq_advance(&ring_, count);
    end_batch(after_batch);
    if (now_ >= next_tick) {
      tick();
      end_batch(after_batch);
      next_tick = now_ + interval;
    }
  }
}

}  // namespace

std::unique_ptr<IoLoop> make_uring_loop() { return std::make_unique<UringLoop>(); }

}  // namespace kv::net
