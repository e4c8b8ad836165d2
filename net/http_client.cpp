#include "net/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <stdexcept>

namespace kv::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

std::string HttpResponse::field(std::string_view name) const {
  for (const auto& [k, v] : fields)
    if (beast::iequals(k, name)) return v;
  return {};
}

struct HttpClient::Impl {
  asio::io_context ioc;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::chrono::milliseconds timeout;

  // Runs the loop until the pending operation completes.
  void run() {
    ioc.restart();
    ioc.run();
  }
};

HttpClient::HttpClient(HostPort server, std::chrono::milliseconds timeout, std::string token)
    : server_(std::move(server)), token_(std::move(token)), impl_(std::make_unique<Impl>()) {
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() = default;

HttpResponse HttpClient::request(std::string_view method, std::string_view target, std::string_view body,
                                 const std::vector<std::pair<std::string, std::string>>& extra) {
  return send(method, target, body, "application/octet-stream", extra);
}

HttpResponse HttpClient::send(std::string_view method, std::string_view target, std::string_view body,
                              std::string_view content_type, const std::vector<std::pair<std::string, std::string>>& extra) {
  auto& s = *impl_;
  const std::string what = server_.str() + ": " + std::string(method) + " " + std::string(target) + ": ";
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = s.stream != nullptr;
    beast::error_code ec;
    if (!s.stream) {
      tcp::resolver resolver(s.ioc);
      const auto endpoints = resolver.resolve(server_.host, std::to_string(server_.port), ec);
      if (ec) throw std::runtime_error(what + "cannot resolve: " + ec.message());
      s.stream = std::make_unique<beast::tcp_stream>(s.ioc);
      s.stream->expires_after(s.timeout);
      s.stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
      s.run();
      if (ec) {
        s.stream.reset();
        throw std::runtime_error(what + (ec == beast::error::timeout ? "connect timed out" : "connect: " + ec.message()));
      }
      s.buffer.clear();
    }
    beast::http::request<beast::http::string_body> req{beast::http::string_to_verb(std::string(method)), std::string(target), 11};
    req.set(beast::http::field::host, server_.str());
    req.set(beast::http::field::user_agent, "ring-rebalance/" KVRING_VERSION);
    if (!token_.empty()) req.set(beast::http::field::authorization, "Bearer " + token_);
    for (const auto& [name, value] : fields_) req.set(name, value);
    for (const auto& [name, value] : extra) req.set(name, value);
    if (!body.empty() || method == "POST") {
      req.set(beast::http::field::content_type, content_type);
      req.body() = std::string(body);
    }
    req.prepare_payload();
    s.stream->expires_after(s.timeout);
    beast::http::async_write(*s.stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
    s.run();
    beast::http::response_parser<beast::http::string_body> parser;
    parser.body_limit(256ull << 20);
    bool got_some = false;
    if (!ec) {
      beast::http::async_read(*s.stream, s.buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
      s.run();
      got_some = parser.got_some();
    }
    if (ec) {
      s.stream.reset();
      if (reused && !got_some && ec != beast::error::timeout) continue;  // the server closed an idle connection
      throw std::runtime_error(what + (ec == beast::error::timeout ? "no answer within " + std::to_string(s.timeout.count()) + " ms"
                                                                 : ec.message()));
    }
    auto msg = parser.release();
    HttpResponse r;
    r.status = msg.result_int();
    for (const auto& f : msg) r.fields.emplace_back(std::string(f.name_string()), std::string(f.value()));
    r.body = std::move(msg.body());
    if (!msg.keep_alive()) s.stream.reset();
    return r;
  }
  throw std::runtime_error(what + "the connection was closed twice");
}

}  // namespace kv::net
