#include "proxy/health.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <cstdio>

namespace kv::proxy {

namespace asio = net::asio;
namespace beast = net::beast;
using net::Clock;
using net::tcp;
using net::use_ec;

namespace {

// One check: connect, GET /health, a 200 within the timeout. `what` says what happened; `body` is
// the answer's body.
asio::awaitable<bool> check_once(asio::io_context& ioc, const Backend& b, std::chrono::milliseconds timeout, std::string& what,
                                 std::string& body) {
  const auto t0 = Clock::now();
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  const auto hp = parse_host_port(b.resolved);
  stream.expires_after(timeout);  // one budget for the whole check
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address(hp->host), hp->port), use_ec(ec));
  if (ec) {
    what = ec == beast::error::timeout ? "connect timed out" : "connect: " + ec.message();
    co_return false;
  }
  beast::http::request<beast::http::empty_body> req{beast::http::verb::get, "/health", 11};
  req.set(beast::http::field::host, b.address.str());
  req.set(beast::http::field::user_agent, "kvproxy-check");
  req.keep_alive(false);
  co_await beast::http::async_write(stream, req, use_ec(ec));
  beast::flat_buffer buffer;
  beast::http::response_parser<beast::http::string_body> parser;
  parser.body_limit(64 * 1024);
  if (!ec) co_await beast::http::async_read(stream, buffer, parser, use_ec(ec));
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (ec) {
    what = ec == beast::error::timeout ? "no answer within " + std::to_string(timeout.count()) + " ms" : "read: " + ec.message();
    co_return false;
  }
  const unsigned status = parser.get().result_int();
  char buf[64];
  std::snprintf(buf, sizeof buf, "HTTP %u in %.1f ms", status,
                std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  what = buf;
  body = std::move(parser.get().body());
  co_return status == 200;
}

asio::awaitable<void> check_loop(Cluster& cluster, asio::io_context& ioc, std::shared_ptr<Backend> b) {
  asio::steady_timer timer(ioc);
  beast::error_code ec;
  while (!b->retired.load()) {
    std::string what, body;
    const bool ok = co_await check_once(ioc, *b, cluster.health().timeout, what, body);
    if (b->retired.load()) break;
    if (ReplicaHealth replica; ok && parse_replica_health(body, replica)) {
      b->serving.store(replica.state == "serving", std::memory_order_relaxed);
      std::lock_guard lock(b->mutex);
      b->replica = std::move(replica);
    } else if (ok) {
      b->serving.store(true, std::memory_order_relaxed);  // a node that says nothing of its copy serves
    }
    cluster.check_result(*b, ok, what);
    timer.expires_after(cluster.health().interval);
    co_await timer.async_wait(use_ec(ec));
    if (ec) break;
  }
}

}  // namespace

void start_health_checks(Cluster& cluster, asio::io_context& ioc, std::shared_ptr<Backend> backend) {
  asio::post(ioc, [&cluster, &ioc, b = std::move(backend)]() mutable {
    asio::co_spawn(ioc, check_loop(cluster, ioc, std::move(b)), asio::detached);
  });
}

}  // namespace kv::proxy
