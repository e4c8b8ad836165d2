// One connection on the Asio frame (net/server.hpp), from its first request to its close, written
// once for kvnode and kvproxy's admin port: serve() reads each request with the deadlines and limits
// of http/limits.hpp (answering "100-continue"), hands it to a Service, writes the answer in one
// write (without the body for HEAD; Connection: close once the server drains), and refuses bad or
// slow requests with the same bytes as kvproxy's data path (http/head_writer.hpp), then lingers.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <string>
#include <string_view>

#include "http/limits.hpp"
#include "http/message.hpp"
#include "http/rejection.hpp"
#include "net/server.hpp"

namespace kv::net {

// What the frame serves: one request in, one answer out.
class Service {
 public:
  // Fills `res` (status, fields, body; serve() sets keep-alive and Content-Length) at once and returns
  // true, or returns false, having touched nothing, for handle() to do it. Most requests need no
  // suspension, and answering them without a coroutine of their own keeps the loop's code small.
  virtual bool answer_now(http::StringRequest& req, http::StringResponse& res) { return false; }
  // Fills `res` as answer_now() does, and may suspend: on the disk, on a thread pool. Runs on the
  // connection's worker.
  virtual asio::awaitable<void> handle(http::StringRequest& req, http::StringResponse& res) = 0;
  // After each answer, a refusal's too, with how long it took from the request read; `req` is null
  // when the refusal came before a head was read.
  virtual void answered(const http::StringRequest* req, unsigned status, Clock::duration took) {}
  virtual void connection_opened() {}
  virtual void connection_closed() {}

 protected:
  ~Service() = default;
};

// Serves the connection until the client closes, a deadline passes, a request is refused, or the
// server drains. `limits` and `service` must outlive it.
asio::awaitable<void> serve(Worker& worker, tcp::socket socket, const http::ServerLimits& limits, Service& service);
// serve() as a handler for Server::listen.
SessionHandler serve_with(const http::ServerLimits& limits, Service& service);

// Writes `head` then `body` as one gathered write. The caller sets the deadline first.
asio::awaitable<void> write_parts(beast::tcp_stream& stream, std::string_view head, std::string_view body,
                                  beast::error_code& ec);

}  // namespace kv::net
