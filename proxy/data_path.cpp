#include "proxy/data_path.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/status.hpp>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <deque>
#include <iostream>
#include <list>
#include <optional>
#include <system_error>
#include <thread>

#include "net/io_loop.hpp"
#include "common/hash.hpp"
#include "http/parser.hpp"
#include "http/rejection.hpp"
#include "http/scan.hpp"
#include "common/io_buffer.hpp"
#include "common/json.hpp"
#include "common/key.hpp"

namespace kv::proxy {

namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;
using http::Method;
using http::ScannedHead;
using http::ScanResult;
using http::iequal_lower;
using Kind = ScannedHead::Kind;
using namespace std::string_view_literals;  // appending a literal as a view skips its strlen()

namespace {

// Node answers with longer heads are refused (by Beast's parser: the scanner declines them).
constexpr std::size_t kAnswerHeaderLimit = 64 * 1024;
// Messages with larger bodies go to Beast's parser, which moves the body out of the connection's
// buffer as it arrives; the fast path holds a whole message in the buffer.
constexpr std::uint64_t kFastPathMaxBody = 64 * 1024;
// Deadlines are kept to within this (the worker's tick).
constexpr std::chrono::milliseconds kTick{50};
// After refusing a request: how long, and how much, of what the client still sends is read and
// dropped, so that it reads the answer rather than a reset.
constexpr std::chrono::seconds kLingerTimeout = http::kLingerTimeout;
constexpr std::size_t kLingerBytes = http::kLingerBytes;
// Asks a node to remember a delete during a rebalance (see node/api.cpp). Only the proxy sets it: a
// client's copy is dropped.
constexpr std::string_view kTombstone = "X-KV-Tombstone: 1\r\n";

std::string os_message(int e) { return std::system_category().message(e); }

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

void append_status_line(std::string& out, unsigned version, unsigned status, std::string_view reason) {
  out.append(version == 10 ? "HTTP/1.0 "sv : "HTTP/1.1 "sv);
  append_number(out, status);
  out.append(" "sv);
  if (reason.empty()) {
    const auto r = beast::http::obsolete_reason(static_cast<beast::http::status>(status));
    out.append(r.data(), r.size());
  } else {
    out.append(reason);
  }
  out.append("\r\n"sv);
}

void append_content_length(std::string& out, std::uint64_t n) {
  out.append("Content-Length: "sv);
  append_number(out, n);
  out.append("\r\n"sv);
}

// Ends a head for the client: how the connection goes on, then the blank line.
void end_head(std::string& out, unsigned version, bool keep_alive) {
  if (!keep_alive) out.append("Connection: close\r\n"sv);
  else if (version == 10) out.append("Connection: keep-alive\r\n"sv);
  out.append("\r\n"sv);
}

// Appends `start_line` (if any) and the fields of `h` that go to the next hop. Lines that lie back
// to back where they came are copied in one piece; the fields of a head Beast read are formatted one
// by one. Left out: hop-by-hop fields (RFC 9110 7.6.1) and those Connection names, Expect on a
// request (the proxy answered it), the field named `drop_lower` (the proxy's to set), and a
// Content-Length that did not come as a line of its own (Beast's heads: the body may have been
// chunked). Returns whether a Content-Length went out: the body then goes on as it came.
bool append_head(const ScannedHead& h, std::string_view start_line, std::string& out, bool request,
                 std::string_view drop_lower) {
  // Field names listed in Connection (other than close/keep-alive) are hop-by-hop too; rare, so the
  // common case costs a flag test.
  std::string_view named[8];
  std::size_t n_named = 0;
  if (h.connection_names_fields) {
    for (const auto& f : h.fields) {
      if (f.kind != Kind::connection) continue;
      std::string_view list = f.value;
      while (!list.empty() && n_named < 8) {
        const auto comma = list.find(',');
        std::string_view token = list.substr(0, comma);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
        if (!token.empty() && !iequal_lower(token, "close") && !iequal_lower(token, "keep-alive")) named[n_named++] = token;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
  }
  const char* run = start_line.data();  // the lines to copy, [run, run_end)
  const char* run_end = run + start_line.size();
  auto flush = [&] {
    if (run != run_end) out.append(run, static_cast<std::size_t>(run_end - run));
    run = run_end = nullptr;
  };
  bool length = false;
  for (const auto& f : h.fields) {
    bool keep = f.kind == Kind::other || (f.kind == Kind::expect && !request);
    if (f.kind == Kind::content_length && !f.line.empty()) keep = length = true;
    if (keep && f.kind == Kind::other) {
      keep = !iequal_lower(f.name, drop_lower);
      for (std::size_t i = 0; i < n_named && keep; ++i) keep = !beast::iequals(f.name, named[i]);
    }
    if (!keep) continue;
    if (f.line.empty()) {
      flush();
      out.append(f.name).append(": "sv).append(f.value).append("\r\n"sv);
    } else if (f.line.data() == run_end) {
      run_end += f.line.size();
    } else {
      flush();
      run = f.line.data();
      run_end = run + f.line.size();
    }
  }
  flush();
  return length;
}

// Gives Beast's parser what `in` holds, consuming what it takes, until the message is done, the
// parser wants more (ec left clear) or it fails (ec set).
template <bool isRequest>
void feed(http::RawParser<isRequest>& p, IoBuffer& in, beast::error_code& ec) {
  while (!in.empty() && !p.is_done()) {
    const std::size_t used = p.put(boost::asio::buffer(in.data(), in.size()), ec);
    in.consume(used);
    if (ec == beast::http::error::need_more) {
      ec = {};
      return;
    }
    if (ec || used == 0) return;
  }
}

struct Endpoint {
  sockaddr_storage address{};
  socklen_t size = 0;
};

std::optional<Endpoint> endpoint_of(const std::string& host, std::uint16_t port) {
  Endpoint e;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&e.address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.address);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    e.size = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    e.size = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  return e;
}

// "ip:port" (Backend::resolved) as a socket address.
std::optional<Endpoint> endpoint_of(const std::string& resolved) {
  const auto hp = parse_host_port(resolved);
  if (!hp) return std::nullopt;
  return endpoint_of(hp->host, hp->port);
}

std::string peer_text(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
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

struct ClientConn;
struct Pool;

// A connection to a node: in its pool while idle, with a receive outstanding so that its closing is
// heard at once; owned by a client connection while it carries that client's request.
struct NodeConn final : net::ChannelHandler {
  NodeConn(DataPath::Worker& w, std::shared_ptr<Pool> p) : worker(w), pool(std::move(p)) {}
  void on_recv(long result) override;
  void on_sent(int result) override;
  void on_connected(int result) override;
  void receive() {
    if (receiving) return;
    receiving = true;
    channel->recv(in);
  }

  DataPath::Worker& worker;
  std::shared_ptr<Pool> pool;
  net::Channel* channel = nullptr;
  IoBuffer in;
  std::string out;  // the request, kept until it is sent
  bool receiving = false, sending = false, connecting = false;
  ClientConn* owner = nullptr;  // while it carries a request
  Clock::time_point idle_since;
};

struct Pool {
  std::shared_ptr<Backend> backend;
  std::optional<Endpoint> endpoint;
  // Taken from the back (the warmest first); the oldest, at the front, are closed once they have
  // idled past the pool's timeout.
  std::deque<std::unique_ptr<NodeConn>> idle;
};

}  // namespace

struct DataPath::Worker {
  Worker(DataPath& d, std::unique_ptr<net::IoLoop> l)
      : dp(d), state(d.state_), opt(d.opt_), counters(d.counters_), log(d.log_), loop_ptr(std::move(l)), loop(*loop_ptr) {}

  DataPath& dp;
  State& state;
  const ProxyOptions& opt;
  ProxyCounters& counters;
  AccessLog* log;
  std::unique_ptr<net::IoLoop> loop_ptr;
  net::IoLoop& loop;
  std::list<std::unique_ptr<ClientConn>> clients;
  std::shared_ptr<const Topology> topology;
  std::uint64_t version = 0;
  // By Backend::slot. shared_ptr: a connection keeps its pool even if a reload drops the node
  // meanwhile.
  std::vector<std::shared_ptr<Pool>> pools;
  // Closed connections, freed after the batch of completions that closed them (their code may
  // still be on the stack).
  std::vector<std::unique_ptr<ClientConn>> dead_clients;
  std::vector<std::unique_ptr<NodeConn>> dead_nodes;
  bool listening = false;
  Clock::time_point accept_pause_until{};
  bool draining = false;
  Clock::time_point drain_deadline{};
  std::thread thread;

  void run();
  void tick();
  void begin_drain(std::chrono::milliseconds timeout);
  void accepted(int fd);
  void set_listening(bool on);
  void maybe_listen();
  void remove_client(ClientConn& c);

  // The topology to use for the next request; refreshed only when a reload published a new one.
  const std::shared_ptr<const Topology>& current();
  std::shared_ptr<Pool>& pool(const std::shared_ptr<Backend>& b);
  // The warmest idle connection that has not idled too long, or null.
  std::unique_ptr<NodeConn> take_idle(Pool& pool);
  // A new connection, connecting; null with `error` set when that failed at once.
  std::unique_ptr<NodeConn> connect(const std::shared_ptr<Pool>& pool, std::string& error);
  // Back to its pool if it can carry another request, else closed.
  void release(std::unique_ptr<NodeConn> c, bool reusable);
  void close_node(std::unique_ptr<NodeConn> c);
  // An idle connection the node closed (or spoke on, unasked).
  void drop_idle(NodeConn& c);
};

namespace {

enum class Outcome { connect_failed, timeout, bad_response };

// Beast's parsers, for the messages the scanners decline: made on first need, kept for the
// connection's life.
struct Fallback {
  http::RawHead req_head;
  std::string req_body;
  std::optional<http::RawParser<true>> req_parser;
  bool continue_sent = false;
  http::RawHead ans_head;
  std::string ans_body;
  std::optional<http::RawParser<false>> ans_parser;
};

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// One client connection and the exchange it is in. The stages:
//   idle        waiting for a request's first byte (the idle deadline; a drain closes it)
//   reading     a request has begun (header, then body deadline)
//   forwarding  at a node, or two during a rebalance (connect, then response deadline)
//   writing     the answer is being sent (write deadline)
//   closing     a refused request: its answer is sent, then what the client still sends is read and
//               dropped for a moment, so that it reads the answer rather than a reset
// Bytes are received only while idle or reading: during an exchange the request's views point into
// in_, which must not move.
struct ClientConn final : net::ChannelHandler {
  enum class Stage { idle, reading, forwarding, writing, closing };
  enum class Parse { more, exchange };

  ClientConn(DataPath::Worker& w, std::string peer) : w_(w), peer_(std::move(peer)) {}

  void start(net::Channel* channel) {
    ch_ = channel;
    drive();
  }
  void on_recv(long result) override;
  void on_sent(int result) override;
  void on_node_recv(long result);
  void on_node_sent(int result);
  void on_node_connected(int result);
  void on_deadline();
  bool idle() const { return stage_ == Stage::idle && in_.empty(); }
  // Gives the buffer back while idle (the worker's tick: a busy connection keeps its block).
  void trim() {
    if (idle()) in_.release(w_.loop.blocks());
  }
  void close(bool graceful = false);

  std::list<std::unique_ptr<ClientConn>>::iterator self;
  Clock::time_point deadline = Clock::time_point::max();

 private:
  // Reading requests
  void drive();
  void receive() {
    if (receiving_) return;
    receiving_ = true;
    ch_->recv(in_);
  }
  Parse parse();
  void start_request_fallback();
  Parse feed_request_fallback();
  void reject(const http::Rejection& r);
  void begin_linger();
  void linger(long result);

  // The exchange
  void begin_exchange();
  void start_step(bool pooled_ok);
  void send_request();
  // false: the answer is not complete yet (the exchange waits for more of it)
  bool parse_answer(bool eof, int error);
  bool feed_answer_fallback(bool eof, int error);
  void answer_failed(int error, std::string detail);
  // The answer in ans_ is complete: its body, and the bytes of the node's buffer it took.
  void answer_ready(std::string_view body, std::size_t consumed);
  void node_failed(Outcome outcome, const std::string& detail);
  void drop_node();
  void local_answer(unsigned status, std::string_view content_type, std::string_view body);
  void send_answer();
  void send_out();
  void finish_exchange();
  Backend& step_backend() const { return **steps_[step_].backend; }

  DataPath::Worker& w_;
  net::Channel* ch_ = nullptr;
  std::string peer_;  // for the access log
  Stage stage_ = Stage::idle;
  bool closed_ = false;
  bool driving_ = false;
  bool receiving_ = false;
  bool sending_ = false;
  bool out_waiting_ = false;  // out_ is ready, behind a 100 Continue still being sent
  bool eof_ = false;          // the client has half-closed (or reset)
  IoBuffer in_;
  std::string out_;  // the answer, kept until it is sent
  std::size_t linger_bytes_ = 0;
  std::unique_ptr<Fallback> fb_;

  // The request: views into in_ (fast path) or into fb_->req_head
  ScannedHead req_;
  std::string_view req_body_;
  bool req_fallback_ = false;   // Beast's parser is reading the request
  bool head_done_ = false;
  unsigned req_version_ = 11;
  std::size_t req_consumed_ = 0;  // bytes of in_ to drop when the exchange ends (fast path)
  // read_done_ is for the latency histogram; first_byte_ and the times below only for the access
  // log, and only taken when there is one.
  Clock::time_point first_byte_, read_done_;

  // Where it goes
  struct Step {
    const std::shared_ptr<Backend>* backend = nullptr;  // into topology_, which is held meanwhile
    std::string_view fields;                            // extra request fields
  };
  std::shared_ptr<const Topology> topology_;
  Step steps_[2];
  int step_ = 0, nsteps_ = 0;
  std::unique_ptr<NodeConn> node_;
  bool reused_ = false, active_ = false, got_answer_bytes_ = false, ans_fallback_ = false;
  int attempt_ = 0;
  Clock::time_point connect_start_, sent_;
  double connect_ms_ = -1, first_byte_ms_ = -1;
  ScannedHead ans_;

  // What the client got
  unsigned answer_status_ = 0;
  std::uint64_t answer_bytes_ = 0;
  const Backend* answered_by_ = nullptr;
  bool answer_keep_alive_ = true;
};

void NodeConn::on_recv(long result) {
  receiving = false;
  if (owner) owner->on_node_recv(result);
  else worker.drop_idle(*this);  // idle in its pool: the node closed it, or spoke unasked
}

void NodeConn::on_sent(int result) {
  sending = false;
  if (owner) owner->on_node_sent(result);
}

void NodeConn::on_connected(int result) {
  connecting = false;
  if (owner) owner->on_node_connected(result);
}

// ---- reading requests ---------------------------------------------------------------------------

void ClientConn::on_recv(long result) {
  receiving_ = false;
  if (stage_ == Stage::closing) {
    linger(result);
    return;
  }
  if (result <= 0) eof_ = true;  // closed, or reset: as good as gone
  drive();
}

void ClientConn::on_sent(int result) {
  sending_ = false;
  if (result < 0) {
    close();
    return;
  }
  if (out_waiting_) {
    out_waiting_ = false;
    send_out();
  } else if (stage_ == Stage::writing) {
    finish_exchange();
  } else if (stage_ == Stage::closing) {
    begin_linger();
  }
}

// Parses until the connection waits for bytes or an exchange is under way. A request answered at
// once (a local answer) ends in finish_exchange(), which calls drive() again: that call returns at
// once and this loop takes the next request, so pipelined requests never recurse.
void ClientConn::drive() {
  if (driving_) return;
  driving_ = true;
  while (!closed_) {
    if (stage_ != Stage::idle && stage_ != Stage::reading) break;
    if (stage_ == Stage::idle && in_.empty() && (w_.draining || eof_)) {
      close();
      break;
    }
    if (parse() == Parse::exchange) continue;
    // More bytes needed.
    if (eof_) {  // the client half-closed in the middle of a request: nobody to answer
      close();
      break;
    }
    if (stage_ == Stage::idle) deadline = w_.loop.now() + w_.opt.client.idle_timeout;
    receive();
    break;
  }
  driving_ = false;
}

ClientConn::Parse ClientConn::parse() {
  if (stage_ == Stage::idle) {
    if (in_.empty()) return Parse::more;
    stage_ = Stage::reading;
    if (w_.log) first_byte_ = Clock::now();
    deadline = w_.loop.now() + w_.opt.client.header_timeout;
    head_done_ = false;
    req_version_ = 11;
  }
  const auto& limits = w_.opt.client;
  if (!req_fallback_) {
    // The views it gives point into in_, which may have moved since the last scan: scanned afresh
    // each time (a head is a few hundred bytes).
    const ScanResult r = http::scan_request(in_.view(), limits.header_limit, req_);
    if (r == ScanResult::need_more) return Parse::more;
    if (r == ScanResult::complete && req_.content_length <= std::min<std::uint64_t>(kFastPathMaxBody, limits.body_limit)) {
      if (!head_done_) {
        head_done_ = true;
        req_version_ = req_.version;
        deadline = w_.loop.now() + limits.body_timeout;
      }
      const std::size_t total = req_.head_size + static_cast<std::size_t>(req_.content_length);
      if (in_.size() < total) return Parse::more;
      req_body_ = in_.view().substr(req_.head_size, static_cast<std::size_t>(req_.content_length));
      req_consumed_ = total;
      begin_exchange();
      return Parse::exchange;
    }
    // Declined, or a body too large for the fast path: Beast's parser reads it from the first byte.
    start_request_fallback();
  }
  return feed_request_fallback();
}

void ClientConn::start_request_fallback() {
  if (!fb_) fb_ = std::make_unique<Fallback>();
  fb_->req_head.clear();
  fb_->req_body.clear();
  auto& p = fb_->req_parser.emplace(fb_->req_head, fb_->req_body);
  p.header_limit(w_.opt.client.header_limit);
  p.body_limit(w_.opt.client.body_limit);
  p.eager(true);
  fb_->continue_sent = false;
  req_fallback_ = true;
}

ClientConn::Parse ClientConn::feed_request_fallback() {
  auto& p = *fb_->req_parser;
  beast::error_code ec;
  feed(p, in_, ec);
  if (p.is_header_done() && !head_done_) {
    head_done_ = true;
    req_version_ = fb_->req_head.version;
    deadline = w_.loop.now() + w_.opt.client.body_timeout;
  }
  if (ec) {
    req_fallback_ = false;
    if (auto r = http::rejection_for(ec, p.is_header_done())) reject(*r);
    else close();
    return Parse::exchange;
  }
  if (!p.is_done()) {
    // Clients that wait for "100 Continue" (curl, for large bodies) send the body only then.
    if (p.is_header_done() && !fb_->continue_sent && iequal_lower(fb_->req_head.find(beast::http::field::expect), "100-continue")) {
      fb_->continue_sent = true;
      if (!sending_) {
        sending_ = true;
        ch_->send(kContinue);
      }
    }
    return Parse::more;
  }
  req_fallback_ = false;
  http::view_of(fb_->req_head, req_);
  req_.keep_alive = p.keep_alive();
  req_.content_length = fb_->req_body.size();
  req_body_ = fb_->req_body;
  req_consumed_ = 0;  // Beast took the bytes already
  begin_exchange();
  return Parse::exchange;
}

void ClientConn::reject(const http::Rejection& r) {
  w_.counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
  const std::string body = json_error(r.detail);
  out_.clear();
  append_status_line(out_, req_version_, static_cast<unsigned>(r.status), {});
  out_.append("Content-Type: application/json\r\n"sv);
  append_content_length(out_, body.size());
  end_head(out_, req_version_, false);
  out_.append(body);
  stage_ = Stage::closing;
  linger_bytes_ = 0;
  deadline = w_.loop.now() + w_.opt.client.write_timeout;
  send_out();
}

void ClientConn::begin_linger() {
  ::shutdown(ch_->fd(), SHUT_WR);
  in_.consume(in_.size());
  linger_bytes_ = 1;  // lingering: counts from 1
  deadline = w_.loop.now() + kLingerTimeout;
  receive();
}

void ClientConn::linger(long result) {
  if (linger_bytes_ == 0) return;  // the answer is still going out
  if (result <= 0) {
    close();  // the client is done too
    return;
  }
  linger_bytes_ += static_cast<std::size_t>(result);
  in_.consume(in_.size());
  if (linger_bytes_ > kLingerBytes) {
    close();
    return;
  }
  deadline = w_.loop.now() + kLingerTimeout;
  receive();
}

// ---- the exchange -------------------------------------------------------------------------------

void ClientConn::begin_exchange() {
  stage_ = Stage::forwarding;
  deadline = Clock::time_point::max();
  read_done_ = Clock::now();
  answered_by_ = nullptr;
  connect_ms_ = first_byte_ms_ = -1;
  auto& counters = w_.counters;
  const auto path = target_path(req_.target);
  if (path == "/health") {
    counters.local_2xx.fetch_add(1, std::memory_order_relaxed);
    local_answer(200, "application/json", R"({"status":"ok"})");
    return;
  }
  if (path == "/metrics") {
    counters.local_2xx.fetch_add(1, std::memory_order_relaxed);
    local_answer(200, "text/plain; version=0.0.4", w_.dp.render_metrics());
    return;
  }
  const KeyResult key = extract_key(req_.target, w_.opt.max_key_bytes);
  if (key.error != KeyError::none) {
    // HAProxy would fall back to round robin here; a store must not scatter a key.
    counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
    local_answer(key.error == KeyError::too_long ? 413 : 400, "application/json", json_error(key_error_detail(key.error)));
    return;
  }
  if (path.starts_with("/admin/")) {
    // The nodes' rebalancing endpoints are not for clients.
    counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
    local_answer(404, "application/json", json_error("Not found"));
    return;
  }

  topology_ = w_.current();  // held for the whole exchange: a reload cannot pull it away
  const std::uint64_t h = hash_key(key.key);
  const std::shared_ptr<Backend>* backend = &topology_->backends[topology_->ring->owner_of_hash(h)];
  // During a rebalance, a write to a key that changes owner goes first to `also`, then to
  // `backend`, whose answer the client gets. The new owner gets deletes with a tombstone.
  const std::shared_ptr<Backend>* also = nullptr;
  std::string_view also_fields, fields;
  if (topology_->migration) [[unlikely]] {
    const Migration& m = *topology_->migration;
    const auto& next = m.backends[m.ring->owner_of_hash(h)];
    if (next->id != (*backend)->id) {
      const bool read = req_.method == Method::get || req_.method == Method::head;
      const bool del = req_.method == Method::delete_;
      if (m.phase == Phase::read_new) {
        if (!read) also = backend;
        backend = &next;
        if (del) fields = kTombstone;
      } else {
        if (!read) also = &next;
        if (del) also_fields = kTombstone;
      }
      counters.rebalance_routed.fetch_add(1, std::memory_order_relaxed);
    }
  }
  nsteps_ = 0;
  if (also) steps_[nsteps_++] = {also, also_fields};
  steps_[nsteps_++] = {backend, fields};
  for (int i = 0; i < nsteps_; ++i) {
    Backend& b = **steps_[i].backend;
    if (!b.up.load(std::memory_order_relaxed)) {
      // Never another node: its keys live on this one.
      b.stats.error(ErrorClass::down);
      answered_by_ = &b;
      local_answer(503, "application/json", json_error("Node " + b.label() + " is down"));
      return;
    }
  }
  step_ = 0;
  start_step(true);
}

// Sends the request to the current step's node over a pooled connection (when `pooled_ok`) or a
// new one.
void ClientConn::start_step(bool pooled_ok) {
  auto& pool = w_.pool(*steps_[step_].backend);
  Backend& b = step_backend();
  attempt_ = pooled_ok ? 0 : 1;
  got_answer_bytes_ = false;
  ans_fallback_ = false;
  // Whatever a parser read of an earlier answer is gone with its connection (a timeout or a
  // failure cut it off): each answer is read from its first byte.
  if (fb_) fb_->ans_parser.reset();
  node_ = pooled_ok ? w_.take_idle(*pool) : nullptr;
  reused_ = node_ != nullptr;
  if (!node_) {
    std::string error;
    if (w_.log) connect_start_ = Clock::now();
    node_ = w_.connect(pool, error);
    if (!node_) {
      node_failed(Outcome::connect_failed, error);
      return;
    }
  }
  node_->owner = this;
  b.stats.pool_active.fetch_add(1, std::memory_order_relaxed);
  active_ = true;
  send_request();
}

// The request as the node gets it: HTTP/1.1, keep-alive, the client's end-to-end fields, the whole
// body with its length (the proxy answered any "Expect: 100-continue" itself).
void ClientConn::send_request() {
  NodeConn& c = *node_;
  std::string& s = c.out;
  s.clear();
  const bool as_it_came = !req_.start_line.empty() && req_.version == 11;
  if (!as_it_came) s.append(req_.method_string).append(" "sv).append(req_.target).append(" HTTP/1.1\r\n"sv);
  const bool length = append_head(req_, as_it_came ? req_.start_line : std::string_view{}, s, true, "x-kv-tombstone");
  s.append(steps_[step_].fields);
  if (!length && (!req_body_.empty() || req_.method == Method::post || req_.method == Method::put))
    append_content_length(s, req_body_.size());
  s.append("\r\n"sv).append(req_body_);
  if (c.connecting) {
    deadline = w_.loop.now() + w_.opt.connect_timeout;  // sent once connected
    return;
  }
  // One budget for sending and the whole answer.
  if (w_.log) sent_ = Clock::now();
  deadline = w_.loop.now() + w_.opt.response_timeout;
  c.sending = true;
  c.channel->send(c.out);
  c.receive();  // a pooled connection has its receive outstanding already
}

void ClientConn::on_node_connected(int result) {
  if (result < 0) {
    node_failed(Outcome::connect_failed, "connect: " + os_message(-result));
    return;
  }
  if (w_.log) connect_ms_ = ms_since(connect_start_);
  send_request();
}

void ClientConn::on_node_sent(int result) {
  if (result < 0) answer_failed(-result, "");
}

void ClientConn::on_node_recv(long result) {
  if (result > 0) got_answer_bytes_ = true;
  if (!parse_answer(result == 0, result < 0 ? static_cast<int>(-result) : 0)) node_->receive();
}

bool ClientConn::parse_answer(bool eof, int error) {
  NodeConn& c = *node_;
  // Most answers take the fast path; anything else (and any answer to HEAD, which has no body
  // whatever its Content-Length says) goes to Beast's parser from its first byte.
  if (!ans_fallback_ && req_.method != Method::head) {
    const ScanResult r = http::scan_response(c.in.view(), kAnswerHeaderLimit, ans_);
    const auto limit = std::min<std::uint64_t>(kFastPathMaxBody, w_.opt.max_response_bytes);
    if (r == ScanResult::complete && ans_.content_length <= limit) {
      if (first_byte_ms_ < 0 && w_.log) first_byte_ms_ = ms_since(sent_);
      const std::size_t total = ans_.head_size + static_cast<std::size_t>(ans_.content_length);
      if (c.in.size() >= total) {
        answer_ready(c.in.view().substr(ans_.head_size, static_cast<std::size_t>(ans_.content_length)), total);
        return true;
      }
    } else if (r != ScanResult::need_more) {
      ans_fallback_ = true;
    }
    if (!ans_fallback_) {
      if (eof || error) {
        answer_failed(error, "partial message");
        return true;
      }
      return false;
    }
  }
  return feed_answer_fallback(eof, error);
}

bool ClientConn::feed_answer_fallback(bool eof, int error) {
  NodeConn& c = *node_;
  auto fresh = [&] {
    fb_->ans_head.clear();
    fb_->ans_body.clear();
    auto& p = fb_->ans_parser.emplace(fb_->ans_head, fb_->ans_body);
    p.skip(req_.method == Method::head);  // an answer to HEAD has no body
    p.body_limit(w_.opt.max_response_bytes);
    p.header_limit(kAnswerHeaderLimit);
    p.eager(true);
  };
  if (!fb_) fb_ = std::make_unique<Fallback>();
  if (!fb_->ans_parser) fresh();
  beast::error_code ec;
  for (;;) {
    auto& p = *fb_->ans_parser;
    feed(p, c.in, ec);
    if (ec) break;
    // Interim answers (1xx) are not the answer: skip them and read on.
    if (p.is_done() && fb_->ans_head.status / 100 == 1) {
      fresh();
      continue;
    }
    if (p.is_header_done() && first_byte_ms_ < 0 && w_.log) first_byte_ms_ = ms_since(sent_);
    if (p.is_done()) {
      http::view_of(fb_->ans_head, ans_);
      ans_.keep_alive = p.keep_alive();
      fb_->ans_parser.reset();
      answer_ready(fb_->ans_body, 0);
      return true;
    }
    if (eof) {
      if (p.got_some()) p.put_eof(ec);  // complete (a body up to EOF) or partial_message
      if (!ec && p.is_done()) continue;
      if (!ec) ec = beast::http::error::partial_message;
    } else if (error) {
      ec.assign(error, boost::system::system_category());
    }
    break;
  }
  if (!ec) return false;
  fb_->ans_parser.reset();
  answer_failed(error, ec.message());
  return true;
}

// The node closed, failed or sent something unreadable. A pooled connection that the node closed
// as the request reached it, before any byte of an answer, is retried once on a fresh connection;
// nothing else is retried.
void ClientConn::answer_failed(int error, std::string detail) {
  // Nothing came back and the connection is gone (EOF, reset): the node had closed it.
  const bool nothing = !got_answer_bytes_ && (error == 0 || error == ECONNRESET || error == EPIPE);
  if (nothing && reused_ && attempt_ == 0) {
    w_.counters.retries.fetch_add(1, std::memory_order_relaxed);
    drop_node();
    start_step(false);
    return;
  }
  if (detail.empty()) detail = os_message(error);
  node_failed(Outcome::bad_response, nothing ? "closed the connection without answering" : "bad answer: " + detail);
}

void ClientConn::drop_node() {
  if (!node_) return;
  if (active_) step_backend().stats.pool_active.fetch_sub(1, std::memory_order_relaxed);
  active_ = false;
  node_->owner = nullptr;
  w_.close_node(std::move(node_));
}

void ClientConn::answer_ready(std::string_view body, std::size_t consumed) {
  Backend& b = step_backend();
  const unsigned code = ans_.status;
  auto release = [&] {
    node_->in.consume(consumed);
    active_ = false;
    b.stats.pool_active.fetch_sub(1, std::memory_order_relaxed);
    node_->owner = nullptr;
    w_.release(std::move(node_), ans_.keep_alive);
  };
  if (step_ + 1 < nsteps_) {
    // The first owner of a write during a rebalance: only if it took the write does it go on.
    const bool proceed = code / 100 == 2 || (code == 404 && req_.method == Method::delete_);
    if (proceed) {
      b.stats.response(code);
      release();
      ++step_;
      start_step(true);
      return;
    }
    // It refused or failed: the client gets that, and the write goes no further.
  }
  std::string& s = out_;
  s.clear();
  const bool as_it_came = !ans_.start_line.empty() && ans_.version == req_.version;
  if (!as_it_came) append_status_line(s, req_.version, code, ans_.reason);
  const bool length = append_head(ans_, as_it_came ? ans_.start_line : std::string_view{}, s, false, "x-kv-node");
  s.append(b.node_field);
  const bool head = req_.method == Method::head;
  if (head) {
    // An answer to HEAD (read by Beast) says how long its body would be: the node's length, if any.
    for (const auto& f : ans_.fields)
      if (f.kind == Kind::content_length) {
        s.append("Content-Length: "sv).append(f.value).append("\r\n"sv);
        break;
      }
  } else if (!length) {
    append_content_length(s, body.size());
  }
  // Decided now, not when the request came in: a drain that began meanwhile closes after this answer.
  answer_keep_alive_ = req_.keep_alive && !w_.draining;
  end_head(s, req_.version, answer_keep_alive_);
  if (!head) s.append(body);  // copied out before the node's buffer is consumed
  answer_status_ = code;
  answer_bytes_ = body.size();
  answered_by_ = &b;
  b.stats.response(code);
  b.stats.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - read_done_).count()));
  release();
  send_answer();
}

void ClientConn::node_failed(Outcome outcome, const std::string& detail) {
  Backend& b = step_backend();
  drop_node();
  answered_by_ = &b;
  switch (outcome) {
    case Outcome::connect_failed:
      w_.state.passive_down(b, detail);
      b.stats.error(ErrorClass::connect);
      local_answer(503, "application/json", json_error("Node " + b.label() + " is unreachable: " + detail));
      break;
    case Outcome::timeout:
      b.stats.error(ErrorClass::timeout);
      local_answer(504, "application/json", json_error("Node " + b.label() + ": " + detail));
      break;
    case Outcome::bad_response:
      b.stats.error(ErrorClass::bad_response);
      local_answer(502, "application/json", json_error("Node " + b.label() + ": " + detail));
      break;
  }
}

// An answer the proxy makes itself.
void ClientConn::local_answer(unsigned status, std::string_view content_type, std::string_view body) {
  std::string& s = out_;
  s.clear();
  append_status_line(s, req_.version, status, {});
  s.append("Content-Type: "sv).append(content_type).append("\r\n"sv);
  append_content_length(s, body.size());
  answer_keep_alive_ = req_.keep_alive && !w_.draining;
  end_head(s, req_.version, answer_keep_alive_);
  answer_status_ = status;
  answer_bytes_ = body.size();
  // An answer to HEAD says how long its body would be and leaves it out.
  if (req_.method != Method::head) s.append(body);
  send_answer();
}

void ClientConn::send_answer() {
  stage_ = Stage::writing;
  deadline = w_.loop.now() + w_.opt.client.write_timeout;
  send_out();
}

// Sends out_, after the 100 Continue if that is still going out.
void ClientConn::send_out() {
  if (sending_) {
    out_waiting_ = true;
    return;
  }
  sending_ = true;
  ch_->send(out_);
}

void ClientConn::finish_exchange() {
  if (w_.log) {
    // client [time] method target node status bytes Tr Tc Tf Tt (ms; Tc -1: pooled connection)
    char times[128];
    std::snprintf(times, sizeof times, " Tr=%.3f Tc=%.3f Tf=%.3f Tt=%.3f\n",
                  std::chrono::duration<double, std::milli>(read_done_ - first_byte_).count(), connect_ms_,
                  first_byte_ms_, ms_since(first_byte_));
    std::string line;
    line.reserve(160 + req_.target.size());
    line.append(peer_).append(" [").append(clf_time()).append("] ").append(req_.method_string).append(" ");
    line.append(req_.target).append(" ").append(answered_by_ ? std::string_view(answered_by_->id) : "-"sv).append(" ");
    line.append(std::to_string(answer_status_)).append(" ").append(std::to_string(answer_bytes_)).append(times);
    w_.log->write(line);
  }
  topology_.reset();
  in_.consume(req_consumed_);
  req_consumed_ = 0;
  req_body_ = {};
  stage_ = Stage::idle;
  deadline = w_.loop.now() + w_.opt.client.idle_timeout;
  if (out_.capacity() > 64 * 1024) std::string().swap(out_);  // a large answer's memory goes
  if (!answer_keep_alive_) {
    close(true);  // FIN after the last answer
    return;
  }
  drive();
}

void ClientConn::on_deadline() {
  deadline = Clock::time_point::max();
  switch (stage_) {
    case Stage::idle:
      close();  // keep-alive idle timeout
      break;
    case Stage::reading:
      req_fallback_ = false;
      reject({beast::http::status::request_timeout,
              head_done_ ? "Timed out reading request body" : "Timed out reading request headers"});
      break;
    case Stage::forwarding:
      if (node_ && node_->connecting) {
        node_failed(Outcome::connect_failed,
                    "connect timed out after " + std::to_string(w_.opt.connect_timeout.count()) + " ms");
      } else {
        node_failed(Outcome::timeout, "no answer within " + std::to_string(w_.opt.response_timeout.count()) + " ms");
      }
      break;
    case Stage::writing:
    case Stage::closing:
      close();
      break;
  }
}

void ClientConn::close(bool graceful) {
  if (closed_) return;
  closed_ = true;
  drop_node();
  topology_.reset();
  ch_->close(graceful);
  in_.consume(in_.size());
  in_.release(w_.loop.blocks());
  w_.remove_client(*this);
}

}  // namespace

// ---- the worker ---------------------------------------------------------------------------------

const std::shared_ptr<const Topology>& DataPath::Worker::current() {
  if (state.version() != version || !topology) {
    topology = state.topology();
    version = topology->version;
    for (auto& p : pools) {  // drop pools of nodes that left
      if (!p || !p->backend->retired.load()) continue;
      p->backend->stats.pool_idle.fetch_sub(static_cast<std::int64_t>(p->idle.size()));
      for (auto& c : p->idle) close_node(std::move(c));
      p->idle.clear();
      p.reset();
    }
  }
  return topology;
}

std::shared_ptr<Pool>& DataPath::Worker::pool(const std::shared_ptr<Backend>& b) {
  if (b->slot >= pools.size()) pools.resize(b->slot + 1);
  auto& p = pools[b->slot];
  if (!p) {
    p = std::make_shared<Pool>();
    p->backend = b;
    p->endpoint = endpoint_of(b->resolved);
  }
  return p;
}

std::unique_ptr<NodeConn> DataPath::Worker::take_idle(Pool& pool) {
  auto& stats = pool.backend->stats;
  while (!pool.idle.empty()) {
    auto c = std::move(pool.idle.back());
    pool.idle.pop_back();
    stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    if (loop.now() - c->idle_since < opt.pool_idle_timeout) return c;
    close_node(std::move(c));
  }
  return nullptr;
}

std::unique_ptr<NodeConn> DataPath::Worker::connect(const std::shared_ptr<Pool>& pool, std::string& error) {
  Backend& b = *pool->backend;
  if (!pool->endpoint) {
    error = "connect: not an IP address: " + b.resolved;
    return nullptr;
  }
  const auto& ep = *pool->endpoint;
  const int fd = ::socket(ep.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "connect: " + os_message(errno);
    return nullptr;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  b.stats.connects.fetch_add(1, std::memory_order_relaxed);
  auto c = std::make_unique<NodeConn>(*this, pool);
  try {
    c->channel = loop.open(fd, *c);
  } catch (const std::system_error& e) {
    error = std::string("connect: ") + e.what();
    return nullptr;
  }
  c->connecting = true;
  c->channel->connect(reinterpret_cast<const sockaddr*>(&ep.address), ep.size);
  return c;
}

void DataPath::Worker::release(std::unique_ptr<NodeConn> c, bool reusable) {
  Pool& p = *c->pool;
  if (reusable && c->in.empty() && !c->sending && !c->connecting && p.idle.size() < opt.max_idle_per_node &&
      !p.backend->retired.load(std::memory_order_relaxed)) {
    c->idle_since = loop.now();  // its buffer goes back to the block pool at the next tick
    c->receive();                // to hear at once if the node closes it
    p.idle.push_back(std::move(c));
    p.backend->stats.pool_idle.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  close_node(std::move(c));
}

void DataPath::Worker::close_node(std::unique_ptr<NodeConn> c) {
  c->owner = nullptr;
  c->channel->close(false);
  dead_nodes.push_back(std::move(c));
}

void DataPath::Worker::drop_idle(NodeConn& c) {
  auto& idle = c.pool->idle;
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if (it->get() != &c) continue;
    c.pool->backend->stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    auto conn = std::move(*it);
    idle.erase(it);
    close_node(std::move(conn));
    return;
  }
}

void DataPath::Worker::accepted(int fd) {
  if (fd < 0) {
    // EMFILE and friends: back off instead of spinning; the backlog holds the clients meanwhile.
    std::cerr << "kvproxy: accept: " << os_message(-fd) << std::endl;
    set_listening(false);
    accept_pause_until = loop.now() + std::chrono::milliseconds(50);
    return;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string peer;
  if (log) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) peer = peer_text(a);
  }
  dp.open_.fetch_add(1, std::memory_order_relaxed);
  counters.client_open.fetch_add(1, std::memory_order_relaxed);
  counters.client_total.fetch_add(1, std::memory_order_relaxed);
  auto& c = *clients.emplace_back(std::make_unique<ClientConn>(*this, std::move(peer)));
  c.self = std::prev(clients.end());
  c.deadline = loop.now() + opt.client.idle_timeout;
  net::Channel* channel = nullptr;
  try {
    channel = loop.open(fd, c);
  } catch (const std::system_error& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    dp.open_.fetch_sub(1, std::memory_order_relaxed);
    counters.client_open.fetch_sub(1, std::memory_order_relaxed);
    clients.erase(c.self);
    return;
  }
  // At maxconn, stop accepting: new clients wait in the kernel's backlog, not in our memory.
  if (dp.open_.load(std::memory_order_relaxed) >= opt.maxconn) set_listening(false);
  c.start(channel);
}

void DataPath::Worker::set_listening(bool on) {
  if (on == listening) return;
  listening = on;
  loop.accepting(on);
}

void DataPath::Worker::maybe_listen() {
  if (!listening && !draining && dp.listen_fd_ >= 0 && loop.now() >= accept_pause_until &&
      dp.open_.load(std::memory_order_relaxed) < opt.maxconn)
    set_listening(true);
}

void DataPath::Worker::remove_client(ClientConn& c) {
  dp.open_.fetch_sub(1, std::memory_order_relaxed);
  counters.client_open.fetch_sub(1, std::memory_order_relaxed);
  const auto it = c.self;
  dead_clients.push_back(std::move(*it));
  clients.erase(it);
  maybe_listen();
  if (draining && clients.empty()) loop.stop();
}

void DataPath::Worker::tick() {
  const auto now = loop.now();
  for (auto it = clients.begin(); it != clients.end();) {
    ClientConn& c = **it;
    ++it;  // c may close, which takes it off the list
    if (c.deadline <= now) c.on_deadline();
    else c.trim();
  }
  for (auto& p : pools) {
    if (!p) continue;
    // Connections that a burst left behind are closed once they idle past the timeout.
    while (!p->idle.empty() && now - p->idle.front()->idle_since >= opt.pool_idle_timeout) {
      close_node(std::move(p->idle.front()));
      p->idle.pop_front();
      p->backend->stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    }
    for (auto& c : p->idle) c->in.release(loop.blocks());
  }
  maybe_listen();
  if (draining && now >= drain_deadline) {
    // Whatever is still in flight at the deadline is cut off.
    std::cerr << "kvproxy: drain deadline passed; closing " << clients.size() << " connection(s)" << std::endl;
    loop.stop();
  }
}

void DataPath::Worker::begin_drain(std::chrono::milliseconds timeout) {
  if (draining) return;
  draining = true;
  drain_deadline = loop.now() + timeout;
  set_listening(false);
  for (auto it = clients.begin(); it != clients.end();) {
    ClientConn& c = **it;
    ++it;
    if (c.idle()) c.close();  // busy ones close after their answer
  }
  if (clients.empty()) loop.stop();
}

void DataPath::Worker::run() {
  loop.set_listener(dp.listen_fd_, dp.workers_.size() > 1, [this](int fd) { accepted(fd); });
  maybe_listen();
  loop.run(
      kTick, [this] { tick(); },
      [this] {
        dead_clients.clear();
        dead_nodes.clear();
      });
  // The loop has stopped: nothing refers to these any more (the loop frees their channels).
  clients.clear();
  for (auto& p : pools)
    if (p) p->idle.clear();
  dead_clients.clear();
  dead_nodes.clear();
}

// ---- DataPath -----------------------------------------------------------------------------------

DataPath::DataPath(State& state, ProxyOptions options, unsigned threads, AccessLog* log, net::IoLoop::Kind io)
    : state_(state), opt_(std::move(options)), log_(log) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i)
    workers_.push_back(std::make_unique<Worker>(*this, net::IoLoop::make(io)));
}

DataPath::~DataPath() {
  join();
  workers_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

const char* DataPath::io_name() const noexcept { return workers_.front()->loop.name(); }

std::uint16_t DataPath::listen(const HostPort& address) {
  Endpoint ep;
  if (auto e = endpoint_of(address.host, address.port)) ep = *e;
  else throw std::runtime_error("cannot listen on " + address.str() + ": not an IP address");
  const int fd = ::socket(ep.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  auto fail = [&](int e) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot listen on " + address.str() + ": " + os_message(e));
  };
  if (fd < 0) fail(errno);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) fail(errno);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ep.address), ep.size) != 0) fail(errno);
  if (::listen(fd, SOMAXCONN) != 0) fail(errno);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  listen_fd_ = fd;
  return bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void DataPath::start() {
  for (auto& w : workers_) w->thread = std::thread([w = w.get()] { w->run(); });
}

void DataPath::drain(std::chrono::milliseconds timeout) {
  for (auto& w : workers_) w->loop.post([w = w.get(), timeout] { w->begin_drain(timeout); });
}

void DataPath::join() {
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

void DataPath::refresh_workers() {
  for (auto& w : workers_) w->loop.post([w = w.get()] { w->current(); });
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
