// The Asio server frame that kvnode and kvproxy's admin port share: worker threads (one io_context
// each), listeners that hand connections to workers under the accept policy of net/listener.hpp,
// deadlines held by a sweep, signal handling and the SIGTERM drain. What a connection does is
// net/session.hpp's serve() loop; this file only owns threads, listeners and the drain.
//
// A connection registers with its worker (ConnectionScope) so that a drain can close it while idle
// and let it finish the request it is on.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "common/config.hpp"
#include "http/limits.hpp"
#include "net/async.hpp"

namespace kv::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Connection {
  beast::tcp_stream* stream = nullptr;
  bool idle = true;  // waiting for a request's first byte, nothing buffered
  // Deadlines without a timer per operation: the worker's sweep (every http::kSweepInterval)
  // cancels the stream once `deadline` has passed, and sets timed_out.
  Clock::time_point deadline = Clock::time_point::max();
  bool timed_out = false;
};

// One event loop and the connections it serves. Touched only on its own thread, except ioc.
struct Worker {
  explicit Worker(unsigned i) : index(i) {}
  const unsigned index;
  // Declared before the loop, so destroyed after it: destroying a loop that a drain deadline stopped
  // destroys the sessions still suspended on it, and each takes itself off this list as it goes.
  std::list<Connection> connections;
  bool stopping = false;
  // One thread runs this loop and every socket on it is used only from that thread, so the reactor's
  // per-socket locking is pure cost. Posts from other threads (health checks, reloads, group commit)
  // still go through the scheduler's lock, which this hint keeps.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
  asio::steady_timer drain_deadline{ioc};
  asio::steady_timer sweep_timer{ioc};

  void finish_if_drained() {
    if (stopping && connections.empty()) ioc.stop();
  }
  // Cancels the I/O of every connection whose deadline has passed. Runs every kSweepInterval.
  void sweep();
};

// Registers a session's stream with its worker for the lifetime of the session.
class ConnectionScope {
 public:
  ConnectionScope(Worker& w, beast::tcp_stream& s) : worker_(w) {
    worker_.connections.push_back(Connection{&s, true});
    it_ = std::prev(worker_.connections.end());
  }
  ~ConnectionScope() {
    worker_.connections.erase(it_);
    worker_.finish_if_drained();
  }
  ConnectionScope(const ConnectionScope&) = delete;
  ConnectionScope& operator=(const ConnectionScope&) = delete;
  void set_idle(bool idle) { it_->idle = idle; }
  bool draining() const { return worker_.stopping; }
  // The next operations must finish within `budget` (to within kSweepInterval).
  void set_deadline(std::chrono::milliseconds budget) {
    it_->deadline = Clock::now() + budget;
    it_->timed_out = false;
  }
  void clear_deadline() { it_->deadline = Clock::time_point::max(); }
  // True once if the sweep cancelled this connection's I/O for its deadline; turns `ec` into
  // beast::error::timeout then, so callers handle one error code.
  bool check_timeout(beast::error_code& ec) {
    if (!it_->timed_out) return false;
    it_->timed_out = false;
    ec = beast::error::timeout;
    return true;
  }

 private:
  Worker& worker_;
  std::list<Connection>::iterator it_;
};

using SessionHandler = std::function<asio::awaitable<void>(Worker&, tcp::socket)>;

class Server {
 public:
  // `name` prefixes log lines ("kvnode: SIGTERM: draining").
  Server(std::string name, unsigned threads, std::chrono::milliseconds shutdown_timeout);
  ~Server();

  // Binds a listener (net/listener.hpp). With `spread`, connections go round-robin to every worker;
  // otherwise all to worker 0. With `maxconn`, at most that many of its connections are open at
  // once: the rest wait in the kernel's accept backlog. Returns the bound port; throws
  // std::runtime_error("cannot listen on H:P: reason").
  std::uint16_t listen(const HostPort& address, SessionHandler handler, bool spread = true, std::size_t maxconn = 0);

  // Runs `fn` on worker 0 when `signal` arrives (e.g. SIGHUP for a reload). Before run().
  void on_signal(int signal, std::function<void()> fn);
  // Runs `fn` on worker 0 when the drain begins (SIGTERM, SIGINT or stop()), for servers of the
  // process that are not this one's (kvproxy's data path). Before run().
  void on_drain(std::function<void()> fn);

  // Serves until SIGTERM/SIGINT or stop(), then drains and returns. Signals stay caught until the
  // Server is destroyed, so the caller can flush safely after run() returns.
  void run();
  // Thread-safe: stop accepting, close idle connections, let busy ones finish their request.
  void stop();

  std::size_t worker_count() const;
  Worker& worker(std::size_t i);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kv::net
