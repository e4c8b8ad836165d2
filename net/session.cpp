#include "net/session.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>

#include <array>

#include "common/rebalance.hpp"
#include "http/head_writer.hpp"
#include "http/parser.hpp"
#include "http/request_reader.hpp"

namespace kv::net {

namespace {

using RequestParser = beast::http::request_parser<beast::http::string_body>;

enum class ReadStatus {
  ok,        // a whole request is in the parser
  closed,    // the client went away or idled out, or the drain closed an idle connection: just close
  rejected,  // a bad or slow request, to be answered with `rejection` and closed
};

// What a failed read of a request's headers (or its body) means for the client.
ReadStatus read_failure(const beast::error_code& ec, bool body, http::Rejection& rejection) {
  auto r = http::rejection_for(ec, body);
  if (!r) return ReadStatus::closed;
  rejection = std::move(*r);
  return ReadStatus::rejected;
}

// Reads into `parser` until its header (header_only) or its whole message is done, straight from the
// socket: async_read_some into `buffer`, then parser.put(), the head held to `head_limit` bytes over
// every put (http/parser.hpp). End of stream before any byte of the message is end_of_stream, in the
// middle of it partial_message. No timer: deadlines come from the sweep. The parser's eager flag is
// the caller's to set for the body.
asio::awaitable<void> read_message(beast::tcp_stream& stream, beast::flat_buffer& buffer, RequestParser& parser,
                                   bool header_only, std::size_t head_limit, std::size_t& head_used,
                                   beast::error_code& ec) {
  for (;;) {
    if (header_only ? parser.is_header_done() : parser.is_done()) co_return;
    if (buffer.size() > 0) {
      const auto bytes = buffer.data();
      const std::size_t used =
          http::put_limited(parser, static_cast<const char*>(bytes.data()), bytes.size(), head_limit, head_used, ec);
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
    const std::size_t n = co_await stream.socket().async_read_some(buffer.prepare(beast::read_size(buffer, 65536)), use_ec(ec));
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

// Reads one request into `parser` (fresh per request, limits set here), answering
// "Expect: 100-continue". Marks the connection idle while waiting for a first byte.
asio::awaitable<ReadStatus> read_request(beast::tcp_stream& stream, beast::flat_buffer& buffer, RequestParser& parser,
                                         const http::ServerLimits& limits, ConnectionScope& scope,
                                         http::Rejection& rejection) {
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
  std::size_t head_used = 0;
  co_await read_message(stream, buffer, parser, true, limits.header_limit, head_used, ec);
  scope.check_timeout(ec);
  if (ec) co_return read_failure(ec, false, rejection);
  const auto target = parser.get().target();
  if (admin_limit && !std::string_view(target.data(), target.size()).starts_with(rebalance::kAdminPrefix)) {
    // The larger limit was only for /admin/: hold everything else to the client limit. A declared
    // length is checked here; a chunked body by the parser as it reads.
    if (parser.content_length() && *parser.content_length() > limits.body_limit)
      co_return read_failure(beast::http::error::body_limit, true, rejection);
    parser.body_limit(limits.body_limit);
  }

  if (!parser.is_done()) {
    // Clients that wait for "100 Continue" (curl, for large bodies) send the body only then.
    if (beast::iequals(parser.get()[beast::http::field::expect], "100-continue")) {
      scope.set_deadline(limits.write_timeout);
      co_await asio::async_write(stream, asio::buffer(http::kContinue.data(), http::kContinue.size()), use_ec(ec));
      if (ec) co_return ReadStatus::closed;
    }
    scope.set_deadline(limits.body_timeout);
    parser.eager(true);
    co_await read_message(stream, buffer, parser, false, limits.header_limit, head_used, ec);
    scope.check_timeout(ec);
    if (ec) co_return read_failure(ec, true, rejection);
  }
  scope.clear_deadline();
  co_return ReadStatus::ok;
}

// The refusal (the same bytes as on kvproxy's data path), then the sending side shut and what the
// client still sends read and dropped for a moment (http/limits.hpp), so that it reads the answer
// rather than a reset.
asio::awaitable<void> send_rejection(beast::tcp_stream& stream, unsigned version, const http::Rejection& rejection,
                                     const http::ServerLimits& limits, ConnectionScope& scope) {
  std::string answer;
  http::append_rejection(answer, version, rejection);
  beast::error_code ec;
  scope.set_deadline(limits.write_timeout);
  co_await write_parts(stream, answer, {}, ec);
  scope.check_timeout(ec);
  if (ec) co_return;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  char sink[16384];
  std::size_t drained = 0;
  while (drained < http::kLingerBytes) {
    scope.set_deadline(std::chrono::duration_cast<std::chrono::milliseconds>(http::kLingerTimeout));
    const std::size_t n = co_await stream.socket().async_read_some(asio::buffer(sink), use_ec(ec));
    if (ec) break;
    drained += n;
  }
  scope.clear_deadline();
}

// Writes an answer whose Content-Length is set (prepare_payload) as one gathered write: the head is
// formatted into `scratch` (reused across calls), the body goes out from where it is. Beast's generic
// serializer spent about a third of kvproxy's instructions walking nested buffer views when the proxy
// used it; this does the same job directly. An answer to HEAD (`head_only`) keeps the Content-Length
// its body would have and is sent without it.
asio::awaitable<void> write_message(beast::tcp_stream& stream, const http::StringResponse& msg, std::string& scratch,
                                    beast::error_code& ec, bool head_only) {
  scratch.clear();
  http::format_head(msg, scratch);
  co_await write_parts(stream, scratch, head_only ? std::string_view{} : std::string_view(msg.body()), ec);
}

// Closes the stream the polite way (FIN after the last answer).
void close_stream(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.close();
}

// Bodies up to this size are copied behind the head and sent as one buffer.
constexpr std::size_t kJoinBodyBytes = 2048;

}  // namespace

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

asio::awaitable<void> serve(Worker& worker, tcp::socket socket, const http::ServerLimits& limits, Service& service) {
  beast::tcp_stream stream(std::move(socket));
  ConnectionScope scope(worker, stream);
  service.connection_opened();
  beast::flat_buffer buffer;
  std::string scratch;  // answer heads are formatted here, for this connection's whole life
  beast::error_code ec;
  for (;;) {
    RequestParser parser;
    http::Rejection rejection;
    const auto status = co_await read_request(stream, buffer, parser, limits, scope, rejection);
    const auto t0 = Clock::now();
    if (status == ReadStatus::closed) break;
    if (status == ReadStatus::rejected) {
      // The version is the request line's as soon as that is read (11 before): a head refused before
      // it ends (413 on its Content-Length) is answered in the client's version all the same.
      co_await send_rejection(stream, parser.get().version(), rejection, limits, scope);
      service.answered(parser.is_header_done() ? &parser.get() : nullptr, static_cast<unsigned>(rejection.status),
                       Clock::now() - t0);
      break;
    }
    auto& req = parser.get();
    http::StringResponse res;
    res.version(req.version());
    if (!service.answer_now(req, res)) co_await service.handle(req, res);
    // Finish this request, but close afterwards when the server is draining.
    res.keep_alive(req.keep_alive() && !scope.draining());
    res.prepare_payload();
    scope.set_deadline(limits.write_timeout);
    co_await write_message(stream, res, scratch, ec, req.method() == beast::http::verb::head);
    scope.check_timeout(ec);
    scope.clear_deadline();
    service.answered(&req, res.result_int(), Clock::now() - t0);
    if (ec || !res.keep_alive()) break;
  }
  close_stream(stream);
  service.connection_closed();
}

SessionHandler serve_with(const http::ServerLimits& limits, Service& service) {
  return [&limits, &service](Worker& w, tcp::socket s) { return serve(w, std::move(s), limits, service); };
}

}  // namespace kv::net
