#include "server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/http/parser.hpp>

#include <atomic>
#include <optional>
#include <iostream>
#include <list>
#include <thread>

namespace kv {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using asio::awaitable;
using Clock = std::chrono::steady_clock;

namespace {

// A connection as its worker sees it, for the SIGTERM drain. Touched only on the worker's thread.
struct Conn {
  beast::tcp_stream* stream = nullptr;
  bool idle = true;  // waiting for the first byte of a request, with nothing buffered
};

struct Worker {
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
  std::list<Conn> conns;
  bool stopping = false;
  asio::steady_timer drain_deadline{ioc};

  void maybe_finish() {
    if (stopping && conns.empty()) ioc.stop();
  }
};

bool is_timeout(const beast::error_code& ec) { return ec == beast::error::timeout; }

// Hands `op` to the store's group committer and completes on the caller's executor once the batch
// holding it is durable. The pending work keeps the caller's io_context running meanwhile.
template <class Token>
auto async_commit(Store& store, WriteOp op, Token&& token) {
  return asio::async_initiate<Token, void(WriteResult)>(
      [&store](auto handler, WriteOp w) {
        using Handler = decltype(handler);
        struct State {
          Handler handler;
          asio::executor_work_guard<asio::associated_executor_t<Handler>> work;
        };
        auto ex = asio::get_associated_executor(handler);
        auto state = std::make_shared<State>(State{std::move(handler), asio::make_work_guard(ex)});
        store.submit(std::move(w), [state](WriteResult r) {
          auto exec = state->work.get_executor();
          asio::post(exec, [state, r = std::move(r)]() mutable {
            state->work.reset();
            std::move(state->handler)(std::move(r));
          });
        });
      },
      token, std::move(op));
}

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  Api& api;
  NodeMetrics& metrics;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::atomic<bool> stop_requested{false};
  std::size_t next_worker = 0;
  // Lives as long as the server: while it exists, SIGTERM/SIGINT are ours. Destroying it restores
  // the default action, so a second signal during the final flush would kill the process.
  std::unique_ptr<asio::signal_set> signals;

  Impl(ServerOptions o, Api& a, NodeMetrics& m) : opt(std::move(o)), api(a), metrics(m) {
    if (opt.threads == 0) opt.threads = 1;
    for (unsigned i = 0; i < opt.threads; ++i) workers.push_back(std::make_unique<Worker>());
  }

  awaitable<void> accept_loop() {
    for (;;) {
      Worker& w = *workers[next_worker];
      next_worker = (next_worker + 1) % workers.size();
      beast::error_code ec;
      tcp::socket sock = co_await acceptor->async_accept(w.ioc, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
        // EMFILE and friends: back off briefly instead of spinning; the backlog holds the clients.
        std::cerr << "kvnode: accept: " << ec.message() << std::endl;
        asio::steady_timer t(workers[0]->ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(w.ioc, session(w, std::move(sock)), asio::detached);
    }
  }

  // Sends a final error answer and closes. The body may be unread (413): keep reading and discarding
  // for a moment after our FIN, so the client sees the answer rather than a reset.
  awaitable<void> reject(beast::tcp_stream& stream, unsigned version, http::status status, std::string_view detail,
                         Route route, Clock::time_point t0) {
    Response res;
    res.version(version);
    error_response(res, status, detail);
    res.keep_alive(false);
    res.prepare_payload();
    beast::error_code ec;
    stream.expires_after(opt.write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    metrics.count(route, static_cast<unsigned>(status), static_cast<std::uint64_t>((Clock::now() - t0).count()));
    if (ec) co_return;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    char sink[16384];
    std::size_t drained = 0;
    while (drained < (8u << 20)) {
      stream.expires_after(std::chrono::seconds(1));
      const std::size_t n =
          co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      drained += n;
    }
  }

  awaitable<void> session(Worker& w, tcp::socket sock) {
    beast::tcp_stream stream(std::move(sock));
    w.conns.push_back(Conn{&stream, true});
    auto self = std::prev(w.conns.end());
    metrics.connection_opened();
    beast::flat_buffer buffer;
    beast::error_code ec;

    while (!w.stopping) {
      // Keep-alive wait: only the idle budget applies until the next request's first byte arrives.
      if (buffer.size() == 0) {
        self->idle = true;
        stream.expires_after(opt.idle_timeout);
        const std::size_t n =
            co_await stream.async_read_some(buffer.prepare(4096), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;  // timeout, EOF, reset, or cancelled by the drain: all are a quiet close
        buffer.commit(n);
      }
      self->idle = false;
      const auto t0 = Clock::now();

      http::request_parser<http::string_body> parser;
      parser.header_limit(opt.header_limit);
      parser.body_limit(opt.body_limit);
      stream.expires_after(opt.header_timeout);
      co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      const Route route = parser.is_header_done() ? Api::route_of(parser.get().target()) : Route::other;
      if (ec) {
        if (ec == http::error::end_of_stream) break;
        if (ec == http::error::header_limit)
          co_await reject(stream, 11, http::status::request_header_fields_too_large, "Request headers too large", route, t0);
        else if (ec == http::error::body_limit)
          co_await reject(stream, 11, http::status::payload_too_large, "Request body too large", route, t0);
        else if (is_timeout(ec))
          co_await reject(stream, 11, http::status::request_timeout, "Timed out reading request headers", route, t0);
        else if (ec != asio::error::operation_aborted && ec != asio::error::connection_reset)
          co_await reject(stream, 11, http::status::bad_request, "Malformed request: " + ec.message(), route, t0);
        break;
      }
      const unsigned version = parser.get().version();

      if (!parser.is_done()) {
        // Answer "Expect: 100-continue" so clients that wait for it (curl, for large bodies) send the body.
        const auto expect = parser.get()[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          stream.expires_after(opt.write_timeout);
          co_await asio::async_write(stream, asio::buffer(kContinue.data(), kContinue.size()),
                                     asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;
        }
        stream.expires_after(opt.body_timeout);
        co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          if (ec == http::error::body_limit)
            co_await reject(stream, version, http::status::payload_too_large, "Request body too large", route, t0);
          else if (is_timeout(ec))
            co_await reject(stream, version, http::status::request_timeout, "Timed out reading request body", route, t0);
          else if (ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                   ec != http::error::partial_message)
            co_await reject(stream, version, http::status::bad_request, "Malformed request body: " + ec.message(), route, t0);
          break;
        }
      }

      Response res;
      std::optional<WriteOp> deferred;
      api.handle(parser.get(), res, &deferred);
      if (deferred) {  // --sync: wait for the group commit without blocking this worker
        const auto kind = deferred->kind;
        WriteResult result = co_await async_commit(api.store(), std::move(*deferred), asio::use_awaitable);
        api.finish_write(kind, result, res);
      }
      // Finish this request, but close afterwards when the server is draining.
      res.keep_alive(parser.get().keep_alive() && !w.stopping);
      res.prepare_payload();
      stream.expires_after(opt.write_timeout);
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      metrics.count(route, res.result_int(), static_cast<std::uint64_t>((Clock::now() - t0).count()));
      if (ec || !res.keep_alive()) break;
    }

    if (!ec || ec == http::error::end_of_stream) stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.close();
    metrics.connection_closed();
    w.conns.erase(self);
    w.maybe_finish();
  }

  void begin_drain() {
    // Runs on worker 0's thread (where the acceptor lives).
    beast::error_code ec;
    if (acceptor) acceptor->close(ec);
    for (auto& wp : workers) {
      Worker* w = wp.get();
      asio::post(w->ioc, [w, limit = opt.shutdown_timeout] {
        w->stopping = true;
        // Whatever is still in flight at the deadline is cut off.
        w->drain_deadline.expires_after(limit);
        w->drain_deadline.async_wait([w](const beast::error_code& timer_ec) {
          if (timer_ec) return;
          std::cerr << "kvnode: drain deadline passed; closing " << w->conns.size() << " connection(s)" << std::endl;
          w->ioc.stop();
        });
        for (auto& c : w->conns)
          if (c.idle) c.stream->socket().cancel();  // busy ones close after their response
        w->maybe_finish();
      });
    }
  }
};

Server::Server(ServerOptions options, Api& api, NodeMetrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), api, metrics)) {}

Server::~Server() = default;

std::uint16_t Server::listen() {
  auto& ioc = impl_->workers[0]->ioc;
  const auto addr = asio::ip::make_address(impl_->opt.bind.host);
  const tcp::endpoint ep(addr, impl_->opt.bind.port);
  auto acc = std::make_unique<tcp::acceptor>(ioc);
  beast::error_code ec;
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + impl_->opt.bind.str() + ": " + ec.message());
  impl_->acceptor = std::move(acc);
  return impl_->acceptor->local_endpoint().port();
}

void Server::wait_for_signal() {
  impl_->signals->async_wait([this](const beast::error_code& ec, int sig) {
    if (ec) return;
    const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    if (impl_->stop_requested.load()) {
      std::cerr << "kvnode: " << name << ": already draining" << std::endl;
    } else {
      std::cerr << "kvnode: " << name << ": draining" << std::endl;
      stop();
    }
    wait_for_signal();
  });
}

void Server::stop() {
  if (impl_->stop_requested.exchange(true)) return;
  asio::post(impl_->workers[0]->ioc, [this] { impl_->begin_drain(); });
}

void Server::run() {
  auto& ioc0 = impl_->workers[0]->ioc;
  impl_->signals = std::make_unique<asio::signal_set>(ioc0, SIGTERM, SIGINT);
  wait_for_signal();
  asio::co_spawn(ioc0, impl_->accept_loop(), asio::detached);

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl_->workers.size(); ++i) threads.emplace_back([w = impl_->workers[i].get()] { w->ioc.run(); });
  ioc0.run();
  for (auto& t : threads) t.join();
}

}  // namespace kv
