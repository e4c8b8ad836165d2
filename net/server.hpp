// The HTTP/1.1 server machinery kvnode and kvproxy share: worker threads (one io_context each),
// listeners that hand connections to workers, reading a request with deadlines and limits, the
// rejections that go with them, signal handling and the SIGTERM drain.
//
// A session is a coroutine that owns its stream, buffer and parser; it registers with its worker
// (ConnectionScope) so that a drain can close it when idle and let it finish when busy.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "http/limits.hpp"
#include "http/rejection.hpp"

namespace kv::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Connection {
  beast::tcp_stream* stream = nullptr;
  bool idle = true;  // waiting for a request's first byte, nothing buffered
  // Deadlines without a timer per operation: the worker's sweep (every kSweepInterval) cancels the
  // stream once `deadline` has passed, and sets timed_out.
  Clock::time_point deadline = Clock::time_point::max();
  bool timed_out = false;
};

// Deadlines are enforced to within this much.
inline constexpr std::chrono::milliseconds kSweepInterval = http::kSweepInterval;

// One event loop and the connections it serves. Touched only on its own thread, except ioc.
struct Worker {
  explicit Worker(unsigned i) : index(i) {}
  const unsigned index;
  // One thread runs this loop and every socket on it is used only from that thread, so the reactor's
  // per-socket locking is pure cost. Posts from other threads (health checks, reloads, group commit)
  // still go through the scheduler's lock, which this hint keeps.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
  std::list<Connection> connections;
  bool stopping = false;
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

using RequestParser = beast::http::request_parser<beast::http::string_body>;

enum class ReadStatus {
  ok,        // a whole request is in the parser
  closed,    // the client went away or idled out, or the drain closed an idle connection: just close
  rejected,  // a bad or slow request was answered with an error (see Rejection) and must be closed
};

// Reads one request into `parser` (fresh per request, limits set here), answering
// "Expect: 100-continue". Marks the connection idle while waiting for a first byte. On `rejected`,
// `rejection` says what to answer: call send_rejection().
asio::awaitable<ReadStatus> read_request(beast::tcp_stream& stream, beast::flat_buffer& buffer, RequestParser& parser,
                                         const http::ServerLimits& limits, ConnectionScope& scope, http::Rejection& rejection);

// Writes `rejection` as a JSON error with Connection: close, then half-closes and discards what the
// client still sends for a moment, so it reads the answer instead of a reset.
asio::awaitable<void> send_rejection(beast::tcp_stream& stream, unsigned version, const http::Rejection& rejection,
                                     const http::ServerLimits& limits, std::string_view extra_header_name = {},
                                     std::string_view extra_header_value = {});

// Closes a session's stream the polite way (FIN after the last answer).
void close_stream(beast::tcp_stream& stream);

using StringRequest = beast::http::request<beast::http::string_body>;
using StringResponse = beast::http::response<beast::http::string_body>;

// Reads into `parser` until its header (header_only) or its whole message is done, straight from the
// socket: async_read_some into `buffer`, then parser.put(). End of stream before any byte of the
// message is beast::http::error::end_of_stream, in the middle of it partial_message. No timer: deadlines
// come from the sweep. The parser's eager flag is the caller's to set for the body.
template <class Stream, bool isRequest>
asio::awaitable<void> read_message(Stream& stream, beast::flat_buffer& buffer, beast::http::basic_parser<isRequest>& parser,
                                   bool header_only, beast::error_code& ec) {
  for (;;) {
    if (header_only ? parser.is_header_done() : parser.is_done()) co_return;
    if (buffer.size() > 0) {
      const std::size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == beast::http::error::need_more) {
        ec = {};
      } else if (ec) {
        co_return;
      } else if (used > 0) {
        continue;
      }
    }
    // On the socket itself: one plain recv() into one buffer, without Beast's stream layers (which
    // also turn it into a recvmsg() over a one-element buffer sequence).
    const std::size_t n = co_await beast::get_lowest_layer(stream).socket().async_read_some(
        buffer.prepare(beast::read_size(buffer, 65536)), asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::eof) {
      if (!parser.got_some()) {
        ec = beast::http::error::end_of_stream;
        co_return;
      }
      ec = {};
      parser.put_eof(ec);  // complete (a body ended by EOF) or partial_message
      co_return;
    }
    if (ec) co_return;
    buffer.commit(n);
  }
}

// Writes a message whose Content-Length is set (prepare_payload) as one gathered write: the head is
// formatted into `scratch` (reused across calls), the body goes out from where it is. Beast's generic
// serializer spent about a third of kvproxy's instructions walking nested buffer views; this does the
// same job directly. The caller sets the deadline (expires_after) first.
asio::awaitable<void> write_message(beast::tcp_stream& stream, const StringRequest& msg, std::string& scratch,
                                    beast::error_code& ec);
// An answer to HEAD (`head_only`) keeps the Content-Length its body would have and is sent without it.
asio::awaitable<void> write_message(beast::tcp_stream& stream, const StringResponse& msg, std::string& scratch,
                                    beast::error_code& ec, bool head_only = false);
// Writes `head` then `body` as one gathered write. The caller sets the deadline first.
asio::awaitable<void> write_parts(beast::tcp_stream& stream, std::string_view head, std::string_view body,
                                  beast::error_code& ec);
// The head alone (start line, fields, blank line), appended to `out`.
void format_head(const StringRequest& msg, std::string& out);
void format_head(const StringResponse& msg, std::string& out);

using SessionHandler = std::function<asio::awaitable<void>(Worker&, tcp::socket)>;

// `redirect_error(use_awaitable, ec)`: the error lands in `ec` instead of an exception.
inline auto use_ec(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// Wraps a completion handler so that it can be called from any thread: the call is posted to the
// handler's own executor, which is kept from running out of work meanwhile. The wrapper is copyable
// (it fits a std::function) and must be called exactly once.
template <class Handler>
auto post_back(Handler handler) {
  struct State {
    Handler handler;
    asio::executor_work_guard<asio::associated_executor_t<Handler>> work;
  };
  auto ex = asio::get_associated_executor(handler);
  auto state = std::make_shared<State>(State{std::move(handler), asio::make_work_guard(ex)});
  return [state](auto... args) {
    asio::post(state->work.get_executor(), [state, ... args = std::move(args)]() mutable {
      state->work.reset();
      std::move(state->handler)(std::move(args)...);
    });
  };
}

// Runs fn() on `pool` and completes with its result (or its exception) on the caller's executor:
// for work too slow for an event loop, such as building a large ring.
template <class R, class Token>
auto async_run(asio::thread_pool& pool, std::function<R()> fn, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr, R)>(
      [&pool](auto handler, std::function<R()> f) {
        asio::post(pool, [done = post_back(std::move(handler)), f = std::move(f)]() mutable {
          std::exception_ptr error;
          R result{};
          try {
            result = f();
          } catch (...) {
            error = std::current_exception();
          }
          done(error, std::move(result));
        });
      },
      token, std::move(fn));
}

class Server {
 public:
  // `name` prefixes log lines ("kvnode: SIGTERM: draining").
  Server(std::string name, unsigned threads, std::chrono::milliseconds shutdown_timeout);
  ~Server();

  // Binds a listener. With `spread`, connections go round-robin to every worker; otherwise all to
  // worker 0. With `maxconn`, at most that many of its connections are open at once: the rest wait
  // in the kernel's accept backlog. Returns the bound port; throws std::runtime_error("cannot listen
  // on H:P: reason").
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
