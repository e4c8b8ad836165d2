#include "node/session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/write.hpp>

#include <optional>

namespace kv {

namespace asio = boost::asio;
namespace beast = boost::beast;
using net::Clock;

namespace {

// Hands `op` to the store's group committer and completes on the caller's executor once the batch
// holding it is durable. The pending work keeps the caller's io_context running meanwhile.
template <class Token>
auto async_commit(Store& store, WriteOp op, Token&& token) {
  return asio::async_initiate<Token, void(WriteResult)>(
      [&store](auto handler, WriteOp w) { store.submit(std::move(w), net::post_back(std::move(handler))); }, token,
      std::move(op));
}

asio::awaitable<void> session(Api& api, NodeMetrics& metrics, const http::ServerLimits& limits, asio::thread_pool& admin_pool,
                              net::Worker& worker, net::tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  net::ConnectionScope scope(worker, stream);
  metrics.connection_opened();
  beast::flat_buffer buffer;
  std::string scratch;  // response heads are formatted here, for this connection's whole life
  beast::error_code ec;

  for (;;) {
    net::RequestParser parser;
    http::Rejection rejection;
    const auto status = co_await net::read_request(stream, buffer, parser, limits, scope, rejection);
    const auto t0 = Clock::now();
    if (status == net::ReadStatus::closed) break;
    const Route route = parser.is_header_done() ? Api::route_of(parser.get().target()) : Route::other;
    if (status == net::ReadStatus::rejected) {
      co_await net::send_rejection(stream, parser.is_header_done() ? parser.get().version() : 11, rejection, limits);
      metrics.count(route, static_cast<unsigned>(rejection.status), static_cast<std::uint64_t>((Clock::now() - t0).count()));
      break;
    }

    Response res;
    std::optional<WriteOp> deferred;
    if (route == Route::admin) {
      std::function<Response()> run = [&api, &req = parser.get()] {
        Response r;
        api.handle(req, r);
        return r;
      };
      res = co_await net::async_run(admin_pool, std::move(run), asio::use_awaitable);
    } else {
      api.handle(parser.get(), res, &deferred);
    }
    if (deferred) {  // --sync: wait for the group commit without blocking this worker
      const auto kind = deferred->kind;
      WriteResult result = co_await async_commit(api.store(), std::move(*deferred), asio::use_awaitable);
      api.finish_write(kind, result, res);
    }
    // Finish this request, but close afterwards when the server is draining.
    res.keep_alive(parser.get().keep_alive() && !scope.draining());
    res.prepare_payload();
    scope.set_deadline(limits.write_timeout);
    co_await net::write_message(stream, res, scratch, ec, parser.get().method() == beast::http::verb::head);
    scope.check_timeout(ec);
    scope.clear_deadline();
    metrics.count(route, res.result_int(), static_cast<std::uint64_t>((Clock::now() - t0).count()));
    if (ec || !res.keep_alive()) break;
  }
  net::close_stream(stream);
  metrics.connection_closed();
}

}  // namespace

net::SessionHandler node_session_handler(Api& api, NodeMetrics& metrics, const http::ServerLimits& limits,
                                         asio::thread_pool& admin_pool) {
  return [&api, &metrics, limits, &admin_pool](net::Worker& w, net::tcp::socket s) {
    return session(api, metrics, limits, admin_pool, w, std::move(s));
  };
}

}  // namespace kv
