#include "data_path.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>
#include <unordered_map>

#include "hash.hpp"
#include "json.hpp"
#include "key.hpp"
#include "response_scan.hpp"

namespace kv::proxy {

namespace asio = net::asio;
namespace beast = net::beast;
namespace http = net::http;
using net::Clock;
using net::tcp;
using net::use_ec;
using namespace std::string_view_literals;  // appending a literal as a view skips its strlen()

namespace {

// RFC 9110 7.6.1: Connection, the fields it names, and these are for one hop only.
bool hop_by_hop(http::field id) {
  switch (id) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
      return true;
    default:
      return false;
  }
}

bool iequal(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()), beast::string_view(b.data(), b.size()));
}

// Appends the fields of `head` that go to the next hop: not hop-by-hop, not named in Connection, not
// Content-Length (recomputed), and not `skip` / `skip_name` (a field Beast does not know by id, such
// as X-KV-Node or X-KV-Tombstone: only fields with id unknown are compared by name).
void append_relayed_fields(const net::RawHead& head, std::string& out, http::field skip, std::string_view skip_name = {}) {
  // Field names listed in Connection (other than close/keep-alive) are hop-by-hop too; rare, so the
  // common case costs one scan.
  std::string_view named[8];
  std::size_t n_named = 0;
  for (const auto& f : head.fields) {
    if (f.id != http::field::connection) continue;
    std::string_view list = head.value(f);
    while (!list.empty() && n_named < 8) {
      const auto comma = list.find(',');
      std::string_view token = list.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      if (!token.empty() && !iequal(token, "close") && !iequal(token, "keep-alive")) named[n_named++] = token;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  for (const auto& f : head.fields) {
    if (hop_by_hop(f.id) || f.id == http::field::content_length || (skip != http::field::unknown && f.id == skip)) continue;
    const auto name = head.name(f);
    if (f.id == http::field::unknown && !skip_name.empty() && iequal(name, skip_name)) continue;
    bool listed = false;
    for (std::size_t i = 0; i < n_named && !listed; ++i) listed = iequal(name, named[i]);
    if (listed) continue;
    out.append(name).append(": "sv).append(head.value(f)).append("\r\n"sv);
  }
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

void append_status_line(std::string& out, unsigned version, unsigned status, std::string_view reason) {
  out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  append_number(out, status);
  out.append(" "sv);
  if (reason.empty()) {
    const auto r = http::obsolete_reason(static_cast<http::status>(status));
    out.append(r.data(), r.size());
  } else {
    out.append(reason);
  }
  out.append("\r\n"sv);
}

// Ends a response head for the client: length and connection handling. `head_length`, for a node's
// answer to HEAD (which has no body here): the node's Content-Length, passed on; none if empty.
void finish_response_head(std::string& out, unsigned version, std::size_t body_size, bool keep_alive,
                          std::optional<std::string_view> head_length = std::nullopt) {
  if (!head_length) {
    out.append("Content-Length: "sv);
    append_number(out, body_size);
    out.append("\r\n"sv);
  } else if (!head_length->empty()) {
    out.append("Content-Length: "sv).append(*head_length).append("\r\n"sv);
  }
  if (!keep_alive) out.append("Connection: close\r\n"sv);
  else if (version == 10) out.append("Connection: keep-alive\r\n"sv);
  out.append("\r\n"sv);
}

// Asks a node to remember a delete during a rebalance (see node/api.cpp). Only the proxy sets it: a
// client's copy is dropped.
constexpr std::string_view kTombstoneField = "X-KV-Tombstone";

struct UpstreamConnection {
  explicit UpstreamConnection(asio::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
};

struct Pool {
  std::shared_ptr<Backend> backend;
  // Taken from the back (the warmest first); the oldest, at the front, are closed once they have
  // idled past the pool's timeout.
  std::deque<std::unique_ptr<UpstreamConnection>> idle;
};

enum class Outcome { relayed, connect_failed, timeout, bad_response };

struct Forwarded {
  Outcome outcome = Outcome::relayed;
  std::string detail;
  double connect_ms = -1;      // -1: a pooled connection was used
  double first_byte_ms = -1;   // request sent -> answer's headers read
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

tcp::endpoint endpoint_of(const std::string& resolved) {
  const auto hp = parse_host_port(resolved);
  return {asio::ip::make_address(hp->host), hp->port};
}

// What one client connection reuses from request to request: no allocation once warm.
struct Exchange {
  net::RawHead request;
  std::string request_body;
  net::RawHead response;
  std::string response_body;
  std::string head;  // the head being written, either way
  ScannedResponse scanned;  // the fast path's view of an answer (reused: no allocation once warm)
};

// The ids append_relayed_fields() needs of an answer's fields: the hop-by-hop ones and
// Content-Length. Every other field is relayed by name, so it may stay unknown.
http::field relay_field_id(ScannedResponse::Kind kind) {
  switch (kind) {
    case ScannedResponse::Kind::content_length: return http::field::content_length;
    case ScannedResponse::Kind::connection: return http::field::connection;
    case ScannedResponse::Kind::keep_alive: return http::field::keep_alive;
    case ScannedResponse::Kind::te: return http::field::te;
    case ScannedResponse::Kind::trailer: return http::field::trailer;
    case ScannedResponse::Kind::other: break;
  }
  return http::field::unknown;
}

// Node answers with longer heads are refused (by Beast's parser: the scanner declines them).
constexpr std::size_t kAnswerHeaderLimit = 64 * 1024;

// Answers this large go to Beast's parser, which passes the body on as it arrives; the fast path
// holds a whole answer in the connection's buffer.
constexpr std::uint64_t kFastPathMaxBody = 64 * 1024;

enum class FastRead { done, declined, failed };

// Reads a node's answer of the common shape (common/response_scan.hpp) into x.response and
// x.response_body without Beast's parser. `declined`: nothing was consumed, the bytes that came so far
// are in conn.buffer for Beast's parser. `failed`: ec is set (end_of_stream when the node closed
// before sending anything, partial_message after) and got_some says whether anything came.
asio::awaitable<FastRead> read_scanned_answer(tcp::socket& socket, beast::flat_buffer& buffer, std::uint64_t max_body,
                                              Exchange& x, bool& keep_alive, bool& got_some, beast::error_code& ec) {
  for (;;) {
    const std::string_view in(static_cast<const char*>(buffer.data().data()), buffer.size());
    const ScanResult r = scan_response(in, kAnswerHeaderLimit, x.scanned);
    if (r == ScanResult::decline) co_return FastRead::declined;
    if (r == ScanResult::complete) {
      const ScannedResponse& a = x.scanned;
      if (a.content_length > kFastPathMaxBody || a.content_length > max_body) co_return FastRead::declined;
      const std::size_t total = a.head_size + static_cast<std::size_t>(a.content_length);
      if (in.size() >= total) {
        // The head goes into the arena in one piece; the scanner's views become offsets into it.
        net::RawHead& head = x.response;
        const std::uint32_t base = head.store(in.substr(0, a.head_size));
        const auto at = [&](std::string_view part) { return base + static_cast<std::uint32_t>(part.data() - in.data()); };
        head.status = a.status;
        head.version = a.version;
        head.reason_offset = at(a.reason);
        head.reason_size = static_cast<std::uint32_t>(a.reason.size());
        for (const auto& field : a.fields) {
          head.fields.push_back({relay_field_id(field.kind), at(field.name), static_cast<std::uint32_t>(field.name.size()),
                                 at(field.value), static_cast<std::uint32_t>(field.value.size())});
        }
        x.response_body.assign(in.substr(a.head_size, static_cast<std::size_t>(a.content_length)));
        keep_alive = a.keep_alive;
        buffer.consume(total);
        co_return FastRead::done;
      }
    }
    const std::size_t n =
        co_await socket.async_read_some(buffer.prepare(beast::read_size(buffer, 65536)), use_ec(ec));
    if (ec == asio::error::eof) ec = buffer.size() == 0 ? http::error::end_of_stream : http::error::partial_message;
    if (ec) {
      got_some = buffer.size() > 0;
      co_return FastRead::failed;
    }
    buffer.commit(n);
  }
}

}  // namespace

struct DataPath::WorkerContext {
  explicit WorkerContext(asio::io_context& i) : ioc(i) {}
  asio::io_context& ioc;
  std::shared_ptr<const Topology> topology;
  std::uint64_t version = 0;
  // shared_ptr: a request in flight keeps its pool even if a reload drops the node meanwhile.
  std::unordered_map<const Backend*, std::shared_ptr<Pool>> pools;

  // The topology to use for the next request; refreshed only when a reload published a new one.
  std::shared_ptr<const Topology> current(const State& state) {
    if (state.version() != version || !topology) {
      topology = state.topology();
      version = topology->version;
      for (auto it = pools.begin(); it != pools.end();) {  // drop pools of nodes that left
        if (it->second->backend->retired.load()) {
          it->second->backend->stats.pool_idle.fetch_sub(static_cast<std::int64_t>(it->second->idle.size()));
          it->second->idle.clear();
          it = pools.erase(it);
        } else {
          ++it;
        }
      }
    }
    return topology;
  }

  std::shared_ptr<Pool> pool(const std::shared_ptr<Backend>& b) {
    auto& p = pools[b.get()];
    if (!p) {
      p = std::make_shared<Pool>();
      p->backend = b;
    }
    return p;
  }
};

DataPath::DataPath(State& state, ProxyOptions options, net::Server& server, AccessLog* log)
    : state_(state), opt_(std::move(options)), log_(log) {
  for (std::size_t i = 0; i < server.worker_count(); ++i)
    workers_.push_back(std::make_unique<WorkerContext>(server.worker(i).ioc));
}

DataPath::~DataPath() = default;

void DataPath::refresh_workers() {
  for (auto& w : workers_) asio::post(w->ioc, [this, ctx = w.get()] { ctx->current(state_); });
}

net::SessionHandler DataPath::handler() {
  return [this](net::Worker& w, tcp::socket s) { return session(w, std::move(s)); };
}

namespace {

// Sends the request in `x` to `backend` over a pooled connection (or a new one) and reads the
// answer into x.response / x.response_body. A pooled connection that the node had already closed,
// before any byte of an answer, is retried once on a fresh connection; nothing else is retried.
// `extra_fields` ("Name: value\r\n" lines) are added to the request head.
asio::awaitable<Forwarded> forward(asio::io_context& ioc, std::shared_ptr<Pool> pool_ptr, Backend& backend,
                                   State& state, const ProxyOptions& opt, Exchange& x, ProxyCounters& counters,
                                   net::ConnectionScope& scope, std::string_view extra_fields = {}) {
  Pool& pool = *pool_ptr;
  Forwarded f;
  auto& stats = backend.stats;

  // The request head as the node gets it: HTTP/1.1, keep-alive, the client's end-to-end fields.
  // The proxy answered any "Expect: 100-continue" itself and holds the whole body.
  x.head.clear();
  x.head.append(x.request.method_string()).append(" "sv).append(x.request.target()).append(" HTTP/1.1\r\n"sv);
  append_relayed_fields(x.request, x.head, http::field::expect, kTombstoneField);
  x.head.append(extra_fields);
  if (!x.request_body.empty() || x.request.method == http::verb::post || x.request.method == http::verb::put) {
    x.head.append("Content-Length: "sv);
    append_number(x.head, x.request_body.size());
    x.head.append("\r\n"sv);
  }
  x.head.append("\r\n"sv);

  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<UpstreamConnection> conn;
    // Attempt 0 takes the warmest pooled connection that has not idled too long; a retry never does.
    while (attempt == 0 && !pool.idle.empty()) {
      auto c = std::move(pool.idle.back());
      pool.idle.pop_back();
      stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
      if (Clock::now() - c->idle_since < opt.pool_idle_timeout) {
        conn = std::move(c);
        break;
      }
    }
    const bool reused = conn != nullptr;
    beast::error_code ec;
    if (!conn) {
      conn = std::make_unique<UpstreamConnection>(ioc);
      const auto t = Clock::now();
      conn->stream.expires_after(opt.connect_timeout);
      co_await conn->stream.async_connect(endpoint_of(backend.resolved), use_ec(ec));
      stats.connects.fetch_add(1, std::memory_order_relaxed);
      if (ec) {
        f.outcome = Outcome::connect_failed;
        f.detail = ec == beast::error::timeout ? "connect timed out after " + std::to_string(opt.connect_timeout.count()) + " ms"
                                               : "connect: " + ec.message();
        state.passive_down(backend, f.detail);
        co_return f;
      }
      conn->stream.expires_never();  // from here on, the client session's deadline covers it
      conn->stream.socket().set_option(tcp::no_delay(true), ec);
      f.connect_ms = ms_since(t);
    }

    stats.pool_active.fetch_add(1, std::memory_order_relaxed);
    struct ActiveGuard {
      BackendStats& s;
      ~ActiveGuard() { s.pool_active.fetch_sub(1, std::memory_order_relaxed); }
    } active{stats};

    const auto sent = Clock::now();
    // One budget for sending and the whole answer; the worker's sweep cancels this node connection
    // (registered as the session's upstream) when it runs out.
    scope.set_deadline(opt.response_timeout);
    scope.set_upstream(&conn->stream);
    struct UpstreamGuard {
      net::ConnectionScope& s;
      ~UpstreamGuard() {
        s.set_upstream(nullptr);
        s.clear_deadline();
      }
    } upstream_guard{scope};
    co_await net::write_parts(conn->stream, x.head, x.request_body, ec);
    x.response.clear();
    x.response_body.clear();
    bool keep_alive = false, got_some = false;
    // Most answers take the fast path; anything else (and any answer to HEAD, which has no body
    // whatever its Content-Length says) goes to Beast's parser from its first byte.
    FastRead fast = FastRead::declined;
    if (!ec && x.request.method != http::verb::head) {
      fast = co_await read_scanned_answer(conn->stream.socket(), conn->buffer, opt.max_response_bytes, x, keep_alive,
                                          got_some, ec);
      if (fast == FastRead::done) f.first_byte_ms = ms_since(sent);
    }
    if (!ec && fast == FastRead::declined) {
      std::optional<net::RawParser<false>> parser;
      auto fresh_parser = [&] {
        x.response.clear();
        x.response_body.clear();
        parser.emplace(x.response, x.response_body);
        parser->skip(x.request.method == http::verb::head);  // an answer to HEAD has no body
        parser->body_limit(opt.max_response_bytes);
        parser->header_limit(kAnswerHeaderLimit);
      };
      fresh_parser();
      co_await net::read_message(conn->stream, conn->buffer, *parser, true, ec);
      // Interim answers (1xx) are not the answer: skip them and read on.
      while (!ec && x.response.status / 100 == 1) {
        fresh_parser();
        co_await net::read_message(conn->stream, conn->buffer, *parser, true, ec);
      }
      if (!ec) {
        f.first_byte_ms = ms_since(sent);
        parser->eager(true);
        co_await net::read_message(conn->stream, conn->buffer, *parser, false, ec);
      }
      got_some = parser->got_some();
      if (!ec) keep_alive = parser->keep_alive();
    }
    scope.check_timeout(ec);
    if (ec) {
      const bool closed_before_answer = !got_some &&
          (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe);
      if (reused && attempt == 0 && closed_before_answer) {
        counters.retries.fetch_add(1, std::memory_order_relaxed);
        continue;  // the node had closed this idle connection: once more, on a fresh one
      }
      if (ec == beast::error::timeout) {
        f.outcome = Outcome::timeout;
        f.detail = "no answer within " + std::to_string(opt.response_timeout.count()) + " ms";
      } else {
        f.outcome = Outcome::bad_response;
        f.detail = closed_before_answer ? "closed the connection without answering" : "bad answer: " + ec.message();
      }
      co_return f;
    }
    if (keep_alive && pool.idle.size() < opt.max_idle_per_node && !backend.retired.load()) {
      conn->idle_since = Clock::now();
      pool.idle.push_back(std::move(conn));
      stats.pool_idle.fetch_add(1, std::memory_order_relaxed);
      // One look at the oldest per request keeps a pool that shrank after a burst from holding its
      // unused connections until the node times them out.
      if (pool.idle.front()->idle_since + opt.pool_idle_timeout < pool.idle.back()->idle_since) {
        pool.idle.pop_front();
        stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    co_return f;
  }
  co_return f;  // not reached: attempt 1 always returns
}

std::string clf_time() {
  char buf[64];
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  const auto n = std::strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(ms));
  return buf;
}

}  // namespace

asio::awaitable<void> DataPath::session(net::Worker& worker, tcp::socket socket) {
  std::string client;
  if (log_) {
    beast::error_code ec;
    const auto ep = socket.remote_endpoint(ec);
    if (!ec) client = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  beast::tcp_stream stream(std::move(socket));
  net::ConnectionScope scope(worker, stream);
  WorkerContext& ctx = *workers_[worker.index];
  counters_.client_open.fetch_add(1, std::memory_order_relaxed);
  counters_.client_total.fetch_add(1, std::memory_order_relaxed);
  beast::flat_buffer buffer;
  Exchange x;
  std::string local_body;  // answers the proxy makes itself
  beast::error_code ec;

  for (;;) {
    x.request.clear();
    x.request_body.clear();
    net::RawParser<true> parser(x.request, x.request_body);
    net::Rejection rejection;
    Clock::time_point first_byte = Clock::now();
    const auto status = co_await net::read_request(stream, buffer, parser, opt_.client, scope, rejection, &first_byte);
    if (status == net::ReadStatus::closed) break;
    if (status == net::ReadStatus::rejected) {
      counters_.local_4xx.fetch_add(1, std::memory_order_relaxed);
      co_await net::send_rejection(stream, parser.is_header_done() ? x.request.version : 11, rejection, opt_.client);
      break;
    }
    const auto read_done = Clock::now();
    const bool client_keep_alive = parser.keep_alive();
    const unsigned version = x.request.version;

    std::shared_ptr<Backend> backend;  // set when a node is behind the answer
    Forwarded fwd;
    unsigned answer = 0;              // status sent to the client
    std::string_view body;            // its body
    std::optional<std::string_view> head_length;  // a node's answer to HEAD: its Content-Length
    auto local = [&](unsigned code, std::string_view content_type, std::string text) {
      local_body = std::move(text);
      x.head.clear();
      append_status_line(x.head, version, code, {});
      x.head.append("Content-Type: "sv).append(content_type).append("\r\n"sv);
      answer = code;
      body = local_body;
    };

    const auto path = target_path(x.request.target());
    if (path == "/health") {
      local(200, "application/json", R"({"status":"ok"})");
      counters_.local_2xx.fetch_add(1, std::memory_order_relaxed);
    } else if (path == "/metrics") {
      local(200, "text/plain; version=0.0.4", render_metrics());
      counters_.local_2xx.fetch_add(1, std::memory_order_relaxed);
    } else if (KeyResult key = extract_key(x.request.target(), opt_.max_key_bytes); key.error != KeyError::none) {
      // HAProxy would fall back to round robin here; a store must not scatter a key.
      local(key.error == KeyError::too_long ? 413 : 400, "application/json", json_error(key_error_detail(key.error)));
      counters_.local_4xx.fetch_add(1, std::memory_order_relaxed);
    } else if (path.starts_with("/admin/")) {
      // The nodes' rebalancing endpoints are not for clients.
      local(404, "application/json", json_error("Not found"));
      counters_.local_4xx.fetch_add(1, std::memory_order_relaxed);
    } else {
      const auto topology = ctx.current(state_);  // held for the whole request: a reload cannot pull it away
      const std::uint64_t h = hash_key(key.key);
      backend = topology->backends[topology->ring->owner_of_hash(h)];
      // During a rebalance, a write to a key that changes owner goes first to `also`, then to
      // `backend`, whose answer the client gets. The new owner gets deletes with a tombstone.
      std::shared_ptr<Backend> also;
      std::string_view also_fields, fields;
      if (topology->migration) [[unlikely]] {
        const Migration& m = *topology->migration;
        const auto& next = m.backends[m.ring->owner_of_hash(h)];
        if (next->id != backend->id) {
          const bool read = x.request.method == http::verb::get || x.request.method == http::verb::head;
          const bool del = x.request.method == http::verb::delete_;
          static constexpr std::string_view kTombstone = "X-KV-Tombstone: 1\r\n";
          if (m.phase == Phase::read_new) {
            if (!read) also = backend;
            backend = next;
            if (del) fields = kTombstone;
          } else {
            if (!read) also = next;
            if (del) also_fields = kTombstone;
          }
          counters_.rebalance_routed.fetch_add(1, std::memory_order_relaxed);
        }
      }
      auto node_error = [&](Backend& b, const Forwarded& f) {
        switch (f.outcome) {
          case Outcome::connect_failed:
            local(503, "application/json", json_error("Node " + b.label() + " is unreachable: " + f.detail));
            b.stats.error(ErrorClass::connect);
            break;
          case Outcome::timeout:
            local(504, "application/json", json_error("Node " + b.label() + ": " + f.detail));
            b.stats.error(ErrorClass::timeout);
            break;
          default:
            local(502, "application/json", json_error("Node " + b.label() + ": " + f.detail));
            b.stats.error(ErrorClass::bad_response);
            break;
        }
      };
      auto relay = [&](Backend& b) {
        const unsigned code = x.response.status;
        x.head.clear();
        append_status_line(x.head, version, code, x.response.reason());
        append_relayed_fields(x.response, x.head, http::field::unknown, "X-KV-Node");
        x.head.append("X-KV-Node: "sv).append(b.id).append("\r\n"sv);
        answer = code;
        body = x.response_body;
        if (x.request.method == http::verb::head) head_length = x.response.find(http::field::content_length);
        b.stats.response(code);
        b.stats.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - read_done).count()));
      };
      bool done = false;
      for (Backend* b : {also.get(), backend.get()}) {
        if (b && !b->up.load(std::memory_order_relaxed)) {
          // Never another node: its keys live on this one.
          local(503, "application/json", json_error("Node " + b->label() + " is down"));
          b->stats.error(ErrorClass::down);
          backend = b == also.get() ? also : backend;
          done = true;
          break;
        }
      }
      if (!done && also) {
        fwd = co_await forward(ctx.ioc, ctx.pool(also), *also, state_, opt_, x, counters_, scope, also_fields);
        const unsigned code = x.response.status;
        const bool proceed = fwd.outcome == Outcome::relayed &&
                             (code / 100 == 2 || (code == 404 && x.request.method == http::verb::delete_));
        if (!proceed) {
          // The first owner refused or failed: the client gets that, and the write goes no further.
          if (fwd.outcome == Outcome::relayed) relay(*also);
          else node_error(*also, fwd);
          backend = also;
          done = true;
        } else {
          also->stats.response(code);
        }
      }
      if (!done) {
        fwd = co_await forward(ctx.ioc, ctx.pool(backend), *backend, state_, opt_, x, counters_, scope, fields);
        if (fwd.outcome == Outcome::relayed) relay(*backend);
        else node_error(*backend, fwd);
      }
    }

    // Decided now, not when the request came in: a drain that began meanwhile closes after this answer.
    const bool keep_alive = client_keep_alive && !scope.draining();
    finish_response_head(x.head, version, body.size(), keep_alive, head_length);
    scope.set_deadline(opt_.client.write_timeout);
    // An answer to HEAD says how long its body would be and leaves it out.
    co_await net::write_parts(stream, x.head, x.request.method == http::verb::head ? std::string_view{} : body, ec);
    scope.check_timeout(ec);
    scope.clear_deadline();

    if (log_) {
      // client [time] method target node status bytes Tr Tc Tf Tt (ms; Tc -1: pooled connection)
      char times[128];
      std::snprintf(times, sizeof times, " Tr=%.3f Tc=%.3f Tf=%.3f Tt=%.3f\n",
                    std::chrono::duration<double, std::milli>(read_done - first_byte).count(), fwd.connect_ms,
                    fwd.first_byte_ms, ms_since(first_byte));
      std::string line;
      line.reserve(160 + x.request.target_size);
      line.append(client).append(" [").append(clf_time()).append("] ").append(x.request.method_string()).append(" ");
      line.append(x.request.target()).append(" ").append(backend ? backend->id : "-").append(" ");
      line.append(std::to_string(answer)).append(" ").append(std::to_string(body.size())).append(times);
      log_->write(line);
    }
    if (ec || !keep_alive) break;
  }
  net::close_stream(stream);
  counters_.client_open.fetch_sub(1, std::memory_order_relaxed);
}

std::string DataPath::render_metrics() const {
  const auto topology = state_.topology();
  std::string out;
  out.reserve(16384);
  using metrics::header;
  using metrics::sample;
  header(out, "kvproxy_build_info", "Build information.", "gauge");
  sample(out, "kvproxy_build_info", "version=\"" KVRING_VERSION "\"", std::uint64_t{1});
  header(out, "kvproxy_ring_version", "Version of the ring in use (1 at start, +1 per reload).", "gauge");
  sample(out, "kvproxy_ring_version", "", topology->version);
  header(out, "kvproxy_reloads_total", "Ring reloads, by result.", "counter");
  sample(out, "kvproxy_reloads_total", "result=\"ok\"", state_.reloads_ok.load());
  sample(out, "kvproxy_reloads_total", "result=\"refused\"", state_.reloads_failed.load());

  header(out, "kvproxy_rebalance_phase", "Rebalance in progress: 0 none, 1 dual_write, 2 read_new.", "gauge");
  sample(out, "kvproxy_rebalance_phase", "",
         std::uint64_t{topology->migration ? static_cast<std::uint8_t>(topology->migration->phase) : 0u});
  header(out, "kvproxy_rebalance_routed_total", "Requests for keys changing owner during a rebalance.", "counter");
  sample(out, "kvproxy_rebalance_routed_total", "", counters_.rebalance_routed.load());
  // Every node of the ring in use and, during a rebalance, those joining with the new ring.
  const auto views = node_views(*topology);
  header(out, "kvproxy_node_up", "1 when the node is up, 0 when down.", "gauge");
  for (const auto& v : views) sample(out, "kvproxy_node_up", "node=\"" + v.backend->id + "\"", std::uint64_t{v.backend->up.load() ? 1u : 0u});
  header(out, "kvproxy_node_ownership_ratio", "Share of the key space the node owns.", "gauge");
  for (const auto& v : views) sample(out, "kvproxy_node_ownership_ratio", "node=\"" + v.backend->id + "\"", v.ownership);
  header(out, "kvproxy_responses_total", "Answers relayed from nodes, by node and status class.", "counter");
  for (const auto& v : views)
    for (std::size_t c = 0; c < 5; ++c)
      sample(out, "kvproxy_responses_total", "node=\"" + v.backend->id + "\",code=\"" + std::to_string(c + 1) + "xx\"",
             v.backend->stats.responses[c].load());
  header(out, "kvproxy_errors_total", "Answers the proxy made because of a node (502/503/504), by node and cause.",
         "counter");
  for (const auto& v : views)
    for (std::size_t c = 0; c < static_cast<std::size_t>(ErrorClass::count_); ++c)
      sample(out, "kvproxy_errors_total",
             "node=\"" + v.backend->id + "\",cause=\"" + std::string(error_class_name(static_cast<ErrorClass>(c))) + "\"",
             v.backend->stats.errors[c].load());
  header(out, "kvproxy_request_duration_seconds", "Request read to answer relayed, by node.", "histogram");
  for (const auto& v : views)
    v.backend->stats.latency.render(out, "kvproxy_request_duration_seconds", "node=\"" + v.backend->id + "\"");
  header(out, "kvproxy_pool_connections", "Pooled connections to nodes, by state.", "gauge");
  for (const auto& v : views) {
    const auto& b = v.backend;
    sample(out, "kvproxy_pool_connections", "node=\"" + b->id + "\",state=\"active\"",
           static_cast<std::uint64_t>(std::max<std::int64_t>(0, b->stats.pool_active.load())));
    sample(out, "kvproxy_pool_connections", "node=\"" + b->id + "\",state=\"idle\"",
           static_cast<std::uint64_t>(std::max<std::int64_t>(0, b->stats.pool_idle.load())));
  }
  header(out, "kvproxy_node_connects_total", "New connections opened to nodes.", "counter");
  for (const auto& v : views)
    sample(out, "kvproxy_node_connects_total", "node=\"" + v.backend->id + "\"", v.backend->stats.connects.load());
  header(out, "kvproxy_retries_total", "Requests retried once because a pooled connection had been closed.", "counter");
  sample(out, "kvproxy_retries_total", "", counters_.retries.load());
  header(out, "kvproxy_local_responses_total", "Answers without a node behind them (no key, /health, /metrics).",
         "counter");
  sample(out, "kvproxy_local_responses_total", "code=\"2xx\"", counters_.local_2xx.load());
  sample(out, "kvproxy_local_responses_total", "code=\"4xx\"", counters_.local_4xx.load());
  header(out, "kvproxy_client_connections_open", "Client connections open now.", "gauge");
  sample(out, "kvproxy_client_connections_open", "", static_cast<std::uint64_t>(std::max<std::int64_t>(0, counters_.client_open.load())));
  header(out, "kvproxy_client_connections_total", "Client connections accepted.", "counter");
  sample(out, "kvproxy_client_connections_total", "", counters_.client_total.load());
  return out;
}

AccessLog::AccessLog(const std::string& path) {
  if (path == "-") {
    fd_ = 2;
    return;
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(errno));
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_) ::close(fd_);
}

void AccessLog::write(std::string_view line) noexcept {
  // O_APPEND and one write() per line: concurrent workers never interleave within a line.
  [[maybe_unused]] const auto n = ::write(fd_, line.data(), line.size());
}

}  // namespace kv::proxy
