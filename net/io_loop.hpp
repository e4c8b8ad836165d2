// One thread's I/O loop for kvproxy's data path, with operations in the completion style: a socket
// (a Channel) is asked to receive or to send, and the result comes back later through its handler.
// Two implementations behind one interface:
//   uring  io_uring (net/io_loop_uring.cpp): the operations of every connection are queued and
//          handed to the kernel in one system call per turn of the loop, together with the wait for
//          what completed. On a machine whose every kernel entry is dear (page-table isolation
//          without PCID, as here: bench/NOTES.md) that is most of the cost of a request.
//   epoll  epoll, edge-triggered (net/io_loop_epoll.cpp): readiness, then one recv or send; for
//          kernels or sandboxes without io_uring.
// Asio, which kvnode and kvproxy's admin side use, allocates an operation per read and resumes a
// coroutine frame per completion; at tens of thousands of requests a second that was most of
// kvproxy's user time (bench/NOTES.md), so the data path has this instead.
//
// Everything but post() and stop() is for the loop's own thread.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/io_buffer.hpp"

namespace kv::net {

// Where the results of a channel's operations go, on the loop's thread.
class ChannelHandler {
 public:
  // > 0: that many bytes were appended to the buffer given to recv(); 0: the peer closed its side;
  // < 0: -errno.
  virtual void on_recv(long result) = 0;
  // 0: every byte was sent; < 0: -errno.
  virtual void on_sent(int result) = 0;
  // 0: connected; < 0: -errno.
  virtual void on_connected(int result) { (void)result; }

 protected:
  ~ChannelHandler() = default;
};

// One socket on a loop. At most one recv and one send (or connect) are outstanding at a time; their
// results never come from inside the call that started them.
class Channel {
 public:
  // Appends what arrives to `into` when it arrives (the buffer is touched only then, so its owner may
  // read and consume it meanwhile).
  virtual void recv(IoBuffer& into) = 0;
  // `data` stays valid and unchanged until on_sent.
  virtual void send(std::string_view data) = 0;
  virtual void connect(const sockaddr* address, socklen_t size) = 0;
  // Cancels what is outstanding and closes the socket, after a FIN when `graceful`; the handler hears
  // nothing more, and the loop frees the channel once the kernel is done with it.
  virtual void close(bool graceful) = 0;
  int fd() const noexcept { return fd_; }

 protected:
  explicit Channel(int fd) : fd_(fd) {}
  virtual ~Channel() = default;
  int fd_;
};

class IoLoop {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Kind { automatic, uring, epoll };

  // `automatic`: io_uring where the kernel allows it, else epoll. Throws std::runtime_error when the
  // kind asked for cannot be had (with the reason).
  static std::unique_ptr<IoLoop> make(Kind kind);
  virtual ~IoLoop() = default;
  virtual const char* name() const noexcept = 0;

  // Takes `fd` (non-blocking or not: the loop sets what it needs); the loop owns the Channel.
  virtual Channel* open(int fd, ChannelHandler& handler) = 0;
  // Calls on_accept(fd) with each connection accepted on `listen_fd` while accepting is on, and
  // on_accept(-errno) when accepting failed for a reason other than there being nothing to accept
  // (EMFILE and the like: the caller pauses accepting for a while).
  virtual void set_listener(int listen_fd, bool exclusive, std::function<void(int)> on_accept) = 0;
  virtual void accepting(bool on) = 0;

  // Thread-safe: runs fn on the loop's thread, in order, soon.
  virtual void post(std::function<void()> fn) = 0;
  // Handles completions until stop(); calls `tick` about every `interval` and `after_batch` after
  // each batch of completions (when the handlers called in it may be freed).
  virtual void run(std::chrono::milliseconds interval, const std::function<void()>& tick,
                   const std::function<void()>& after_batch) = 0;
  virtual void stop() = 0;  // thread-safe

  // When the current batch began: for deadlines (good to a batch), not for measuring.
  Clock::time_point now() const noexcept { return now_; }
  // Buffers for the connections of this loop.
  BlockPool& blocks() noexcept { return blocks_; }

 protected:
  Clock::time_point now_ = Clock::now();
  BlockPool blocks_;
};

// "auto", "uring" or "epoll" (the --io flag); false for anything else.
bool parse_io_kind(std::string_view text, IoLoop::Kind& kind);

}  // namespace kv::net
