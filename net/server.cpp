#include "net/server.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "common/json.hpp"
#include "http/rejection.hpp"

namespace kv::net {

namespace {

// What a failed read of a request's headers (or its body) means for the client.
ReadStatus read_failure(const beast::error_code& ec, bool body, http::Rejection& rejection) {
  auto r = http::rejection_for(ec, body);
  if (!r) return ReadStatus::closed;
  rejection = std::move(*r);
  return ReadStatus::rejected;
}

std::string_view target_of(RequestParser& p) { return {p.get().target().data(), p.get().target().size()}; }

bool expects_continue(RequestParser& p) { return beast::iequals(p.get()[beast::http::field::expect], "100-continue"); }

}  // namespace

asio::awaitable<ReadStatus> read_request(beast::tcp_stream& stream, beast::flat_buffer& buffer, RequestParser& parser,
                                         const http::ServerLimits& limits, ConnectionScope& scope, http::Rejection& rejection) {
  beast::error_code ec;
  // Keep-alive wait: only the idle budget applies until the next request's first byte arrives.
  if (buffer.size() == 0) {
    scope.set_idle(true);
    if (scope.draining()) co_return ReadStatus::closed;
    scope.set_deadline(limits.idle_timeout);
    const std::size_t n = co_await stream.socket().async_read_some(buffer.prepare(4096), use_ec(ec));
    if (ec) co_return ReadStatus::closed;  // idle timeout, EOF, reset, or cancelled by the drain
    buffer.commit(n);
  }
  scope.set_idle(false);

  parser.header_limit(limits.header_limit);
  const bool admin_limit = limits.admin_body_limit > limits.body_limit;
  parser.body_limit(admin_limit ? limits.admin_body_limit : limits.body_limit);
  scope.set_deadline(limits.header_timeout);
  co_await read_message(stream, buffer, parser, true, ec);
  scope.check_timeout(ec);
  if (ec) co_return read_failure(ec, false, rejection);
  if (admin_limit && !target_of(parser).starts_with("/admin/")) {
    // The larger limit was only for /admin/: hold everything else to the client limit. A declared
    // length is checked here; a chunked body by the parser as it reads.
    if (parser.content_length() && *parser.content_length() > limits.body_limit)
      co_return read_failure(beast::http::error::body_limit, true, rejection);
    parser.body_limit(limits.body_limit);
  }

  if (!parser.is_done()) {
    // Clients that wait for "100 Continue" (curl, for large bodies) send the body only then.
    if (expects_continue(parser)) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      scope.set_deadline(limits.write_timeout);
      co_await asio::async_write(stream, asio::buffer(kContinue.data(), kContinue.size()), use_ec(ec));
      if (ec) co_return ReadStatus::closed;
    }
    scope.set_deadline(limits.body_timeout);
    parser.eager(true);
    co_await read_message(stream, buffer, parser, false, ec);
    scope.check_timeout(ec);
    if (ec) co_return read_failure(ec, true, rejection);
  }
  scope.clear_deadline();
  co_return ReadStatus::ok;
}

asio::awaitable<void> send_rejection(beast::tcp_stream& stream, unsigned version, const http::Rejection& rejection,
                                     const http::ServerLimits& limits, std::string_view extra_name, std::string_view extra_value) {
  beast::http::response<beast::http::string_body> res{rejection.status, version ? version : 11};
  res.set(beast::http::field::content_type, "application/json");
  if (!extra_name.empty()) res.set(extra_name, extra_value);
  res.body() = json_error(rejection.detail);
  res.keep_alive(false);
  res.prepare_payload();
  beast::error_code ec;
  stream.expires_after(limits.write_timeout);
  co_await beast::http::async_write(stream, res, use_ec(ec));
  if (ec) co_return;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  char sink[16384];
  std::size_t drained = 0;
  while (drained < (8u << 20)) {
    stream.expires_after(std::chrono::seconds(1));
    const std::size_t n = co_await stream.async_read_some(asio::buffer(sink), use_ec(ec));
    if (ec) break;
    drained += n;
  }
}

namespace {

template <class Fields>
void append_fields(const Fields& fields, std::string& out) {
  for (const auto& f : fields) {
    const auto name = f.name_string();
    const auto value = f.value();
    out.append(name.data(), name.size()).append(": ").append(value.data(), value.size()).append("\r\n");
  }
  out.append("\r\n");
}

const char* version_string(unsigned v) { return v == 10 ? "HTTP/1.0" : "HTTP/1.1"; }

template <class Message>
asio::awaitable<void> write_whole(beast::tcp_stream& stream, const Message& msg, std::string& scratch,
                                  beast::error_code& ec, bool head_only = false) {
  scratch.clear();
  format_head(msg, scratch);
  co_await write_parts(stream, scratch, head_only ? std::string_view{} : std::string_view(msg.body()), ec);
}

}  // namespace

// Bodies up to this size are copied behind the head and sent as one buffer.
constexpr std::size_t kJoinBodyBytes = 2048;

asio::awaitable<void> write_parts(beast::tcp_stream& stream, std::string_view head, std::string_view body,
                                  beast::error_code& ec) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head.data(), head.size()),
                                            asio::buffer(body.data(), body.size())};
  // Most answers fit the socket's send buffer: one non-blocking send, straight away, instead of an
  // asynchronous write whose completion waits its turn behind every handler already queued (a full
  // trip round the event loop per message). Only what the kernel did not take goes the async way.
  auto& socket = stream.socket();
  if (!socket.non_blocking()) socket.non_blocking(true, ec);
  std::size_t sent = 0;
  if (!ec) {
    if (body.size() <= kJoinBodyBytes) {
      // One buffer: send() rather than sendmsg() with two iovecs (the kernel imports the msghdr).
      thread_local std::string joined;
      joined.assign(head).append(body);
      sent = socket.write_some(asio::buffer(joined), ec);
    } else {
      sent = socket.write_some(buffers, ec);
    }
  }
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  if (ec) co_return;
  const std::size_t total = head.size() + body.size();
  if (sent == total) co_return;
  if (sent < head.size()) {
    buffers[0] = asio::buffer(head.data() + sent, head.size() - sent);
  } else {
    buffers[0] = asio::const_buffer();
    buffers[1] = asio::buffer(body.data() + (sent - head.size()), total - sent);
  }
  co_await asio::async_write(socket, buffers, use_ec(ec));
}

void format_head(const StringRequest& msg, std::string& out) {
  const auto method = msg.method_string();
  const auto target = msg.target();
  out.append(method.data(), method.size()).append(" ").append(target.data(), target.size()).append(" ");
  out.append(version_string(msg.version())).append("\r\n");
  append_fields(msg.base(), out);
}

void format_head(const StringResponse& msg, std::string& out) {
  out.append(version_string(msg.version())).append(" ");
  char code[8];
  const auto n = std::snprintf(code, sizeof code, "%u ", msg.result_int());
  out.append(code, static_cast<std::size_t>(n));
  auto reason = msg.reason();
  if (reason.empty()) reason = beast::http::obsolete_reason(msg.result());
  out.append(reason.data(), reason.size()).append("\r\n");
  append_fields(msg.base(), out);
}

asio::awaitable<void> write_message(beast::tcp_stream& stream, const StringRequest& msg, std::string& scratch,
                                    beast::error_code& ec) {
  co_await write_whole(stream, msg, scratch, ec);
}

asio::awaitable<void> write_message(beast::tcp_stream& stream, const StringResponse& msg, std::string& scratch,
                                    beast::error_code& ec, bool head_only) {
  co_await write_whole(stream, msg, scratch, ec, head_only);
}

void Worker::sweep() {
  const auto now = Clock::now();
  for (auto& c : connections) {
    if (c.deadline > now) continue;
    c.deadline = Clock::time_point::max();
    c.timed_out = true;
    beast::error_code ignored;
    c.stream->socket().cancel(ignored);
  }
  sweep_timer.expires_after(kSweepInterval);
  sweep_timer.async_wait([this](const beast::error_code& ec) {
    if (!ec) sweep();
  });
}

void close_stream(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.close();
}

struct Server::Impl {
  struct Listener {
    std::unique_ptr<tcp::acceptor> acceptor;
    SessionHandler handler;
    bool spread = true;
    std::size_t next = 0;
    std::size_t maxconn = 0;                     // 0: no limit
    std::atomic<std::size_t> open{0};
  };

  std::string name;
  std::chrono::milliseconds shutdown_timeout;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::map<int, std::function<void()>> signal_handlers;
  std::vector<std::function<void()>> drain_hooks;
  std::atomic<bool> stop_requested{false};
  // Lives as long as the server: while it exists, the signals are ours. Destroying it restores the
  // default action, so a second SIGTERM during the caller's final flush would kill the process.
  std::unique_ptr<asio::signal_set> signals;

  static asio::awaitable<void> counted(Listener& l, asio::awaitable<void> session) {
    struct Release {
      Listener& l;
      ~Release() { l.open.fetch_sub(1, std::memory_order_relaxed); }
    } release{l};
    co_await std::move(session);
  }

  asio::awaitable<void> accept_loop(Listener& l) {
    asio::steady_timer pause(workers[0]->ioc);
    for (;;) {
      beast::error_code ec;
      // At maxconn, stop accepting: new clients wait in the kernel's backlog, not in our memory.
      while (l.maxconn && l.open.load(std::memory_order_relaxed) >= l.maxconn && l.acceptor->is_open()) {
        pause.expires_after(std::chrono::milliseconds(5));
        co_await pause.async_wait(use_ec(ec));
      }
      Worker& w = *workers[l.spread ? l.next : 0];
      l.next = (l.next + 1) % workers.size();
      // Accepted on the acceptor's own loop (worker 0). A socket must be registered with a worker's
      // reactor on that worker's thread: reactor I/O locking is off (CONCURRENCY_HINT_UNSAFE_IO), so
      // registering it from here could reuse a descriptor record the worker is still reading (TSan).
      tcp::socket sock = co_await l.acceptor->async_accept(use_ec(ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !l.acceptor->is_open()) co_return;
        // EMFILE and friends: back off instead of spinning; the backlog holds the clients meanwhile.
        std::cerr << name << ": accept: " << ec.message() << std::endl;
        asio::steady_timer t(workers[0]->ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(use_ec(ec));
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      l.open.fetch_add(1, std::memory_order_relaxed);
      auto start = [&l](Worker& on, tcp::socket s) {
        asio::co_spawn(on.ioc, counted(l, l.handler(on, std::move(s))), asio::detached);
      };
      if (&w == workers[0].get()) {
        start(w, std::move(sock));
        continue;
      }
      const auto protocol = sock.local_endpoint(ec).protocol();
      const int fd = ec ? -1 : sock.release(ec);
      if (fd < 0) {
        l.open.fetch_sub(1, std::memory_order_relaxed);
        continue;  // the client is gone already
      }
      asio::post(w.ioc, [&l, &w, fd, protocol, start] {
        beast::error_code assign_ec;
        tcp::socket moved(w.ioc);
        moved.assign(protocol, fd, assign_ec);
        if (assign_ec) {
          ::close(fd);
          l.open.fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        start(w, std::move(moved));
      });
    }
  }

  void begin_drain() {  // on worker 0's thread, where the acceptors live
    for (auto& hook : drain_hooks) hook();
    beast::error_code ec;
    for (auto& l : listeners) l->acceptor->close(ec);
    for (auto& wp : workers) {
      Worker* w = wp.get();
      asio::post(w->ioc, [this, w] {
        w->stopping = true;
        // Whatever is still in flight at the deadline is cut off.
        w->drain_deadline.expires_after(shutdown_timeout);
        w->drain_deadline.async_wait([this, w](const beast::error_code& timer_ec) {
          if (timer_ec) return;
          std::cerr << name << ": drain deadline passed; closing " << w->connections.size() << " connection(s)"
                    << std::endl;
          w->ioc.stop();
        });
        for (auto& c : w->connections)
          if (c.idle) c.stream->socket().cancel();  // busy ones close after their response
        w->finish_if_drained();
      });
    }
  }

  void stop() {
    if (stop_requested.exchange(true)) return;
    asio::post(workers[0]->ioc, [this] { begin_drain(); });
  }

  void wait_for_signal() {
    signals->async_wait([this](const beast::error_code& ec, int sig) {
      if (ec) return;
      if (auto it = signal_handlers.find(sig); it != signal_handlers.end()) {
        it->second();
      } else {
        const char* sname = sig == SIGTERM ? "SIGTERM" : "SIGINT";
        if (stop_requested.load()) {
          std::cerr << name << ": " << sname << ": already draining" << std::endl;
        } else {
          std::cerr << name << ": " << sname << ": draining" << std::endl;
          stop();
        }
      }
      wait_for_signal();
    });
  }
};

Server::Server(std::string name, unsigned threads, std::chrono::milliseconds shutdown_timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->shutdown_timeout = shutdown_timeout;
  for (unsigned i = 0; i < std::max(1u, threads); ++i) impl_->workers.push_back(std::make_unique<Worker>(i));
}

Server::~Server() = default;

std::uint16_t Server::listen(const HostPort& address, SessionHandler handler, bool spread, std::size_t maxconn) {
  beast::error_code ec;
  const auto ip = asio::ip::make_address(address.host, ec);
  if (ec) throw std::runtime_error("cannot listen on " + address.str() + ": not an IP address");
  const tcp::endpoint ep(ip, address.port);
  auto acc = std::make_unique<tcp::acceptor>(impl_->workers[0]->ioc);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + address.str() + ": " + ec.message());
  const auto port = acc->local_endpoint().port();
  auto l = std::make_unique<Impl::Listener>();
  l->acceptor = std::move(acc);
  l->handler = std::move(handler);
  l->spread = spread;
  l->maxconn = maxconn;
  impl_->listeners.push_back(std::move(l));
  return port;
}

void Server::on_signal(int signal, std::function<void()> fn) { impl_->signal_handlers[signal] = std::move(fn); }

void Server::on_drain(std::function<void()> fn) { impl_->drain_hooks.push_back(std::move(fn)); }

void Server::stop() { impl_->stop(); }

std::size_t Server::worker_count() const { return impl_->workers.size(); }

Worker& Server::worker(std::size_t i) { return *impl_->workers[i]; }

void Server::run() {
  auto& ioc0 = impl_->workers[0]->ioc;
  impl_->signals = std::make_unique<asio::signal_set>(ioc0, SIGTERM, SIGINT);
  for (const auto& [sig, fn] : impl_->signal_handlers) impl_->signals->add(sig);
  impl_->wait_for_signal();
  for (auto& l : impl_->listeners) asio::co_spawn(ioc0, impl_->accept_loop(*l), asio::detached);

  for (auto& w : impl_->workers) asio::post(w->ioc, [wp = w.get()] { wp->sweep(); });

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl_->workers.size(); ++i)
    threads.emplace_back([w = impl_->workers[i].get()] { w->ioc.run(); });
  ioc0.run();
  for (auto& t : threads) t.join();
}

}  // namespace kv::net
