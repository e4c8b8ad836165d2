#include "data_path.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

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

#include "event_loop.hpp"
#include "hash.hpp"
#include "http_scan.hpp"
#include "io_buffer.hpp"
#include "json.hpp"
#include "key.hpp"

namespace kv::proxy {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using Kind = ScannedHead::Kind;
using namespace std::string_view_literals;  // appending a literal as a view skips its strlen()

namespace {

// Node answers with longer heads are refused (by Beast's parser: the scanner declines them).
constexpr std::size_t kAnswerHeaderLimit = 64 * 1024;
// Messages with larger bodies go to Beast's parser, which moves the body out of the connection's
// buffer as it arrives; the fast path holds a whole message in the buffer.
constexpr std::uint64_t kFastPathMaxBody = 64 * 1024;
// Free space a buffer is given before each recv.
constexpr std::size_t kMinRecv = 4096;
// What a node connection's buffer may hold before the parser has taken some of it: a whole
// fast-path answer fits, and Beast's parser needs a whole head at once. (Client connections: the
// same with the client header limit, Worker::max_request.)
constexpr std::size_t kMaxAnswerBuffered = kAnswerHeaderLimit + kFastPathMaxBody;
// Deadlines are kept to within this (the worker's tick).
constexpr std::chrono::milliseconds kTick{50};
// After refusing a request: how long, and how much, of what the client still sends is read and
// dropped, so that it reads the answer rather than a reset.
constexpr std::chrono::seconds kLingerTimeout{1};
constexpr std::size_t kLingerBytes = 8u << 20;
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
    const auto r = http::obsolete_reason(static_cast<http::status>(status));
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

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
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
        if (!token.empty() && !iequal(token, "close") && !iequal(token, "keep-alive")) named[n_named++] = token;
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
      for (std::size_t i = 0; i < n_named && keep; ++i) keep = !iequal(f.name, named[i]);
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

// One non-blocking send of `a` then `b`: the bytes the kernel took, or -1 with errno set (EAGAIN
// counts as 0). One buffer goes out with send(), two with sendmsg().
ssize_t send_some(int fd, std::string_view a, std::string_view b = {}) {
  ssize_t n;
  if (b.empty()) {
    n = ::send(fd, a.data(), a.size(), MSG_NOSIGNAL);
  } else {
    iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    n = ::sendmsg(fd, &m, MSG_NOSIGNAL);
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  return n;
}

struct ClientConn;
struct Pool;

// A connection to a node: in its pool while idle, owned by a client connection while it carries
// that client's request.
struct NodeConn final : net::EventLoop::Handler {
  NodeConn(DataPath::Worker& w, std::shared_ptr<Pool> p, int f) : worker(w), pool(std::move(p)), fd(f) {}
  ~NodeConn() override {
    if (fd >= 0) ::close(fd);
  }
  void on_events(std::uint32_t events) override;

  DataPath::Worker& worker;
  std::shared_ptr<Pool> pool;
  int fd;
  IoBuffer in;
  std::string pending;  // request bytes the socket has not taken yet
  std::size_t pending_at = 0;
  bool connecting = false;
  bool peer_closed = false;  // the node has sent its FIN (or failed): never reused
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

struct Listener final : net::EventLoop::Handler {
  explicit Listener(DataPath::Worker& w) : worker(w) {}
  void on_events(std::uint32_t) override;
  DataPath::Worker& worker;
};

}  // namespace

struct DataPath::Worker {
  Worker(DataPath& d)
      : dp(d), state(d.state_), opt(d.opt_), counters(d.counters_), log(d.log_),
        max_request(opt.client.header_limit + kFastPathMaxBody), listener(*this) {}

  DataPath& dp;
  State& state;
  const ProxyOptions& opt;
  ProxyCounters& counters;
  AccessLog* log;
  // What a client connection's buffer may hold before the parser has taken some of it: a whole
  // fast-path request fits, and Beast's parser needs a whole head at once.
  const std::size_t max_request;
  net::EventLoop loop;
  BlockPool blocks;
  std::string scratch;  // the message being put together
  std::list<std::unique_ptr<ClientConn>> clients;
  std::shared_ptr<const Topology> topology;
  std::uint64_t version = 0;
  // By Backend::slot. shared_ptr: a connection keeps its pool even if a reload drops the node
  // meanwhile.
  std::vector<std::shared_ptr<Pool>> pools;
  Listener listener;
  bool listening = false;
  Clock::time_point accept_pause_until{};
  bool draining = false;
  Clock::time_point drain_deadline{};
  std::thread thread;

  void run();
  void tick();
  void begin_drain(std::chrono::milliseconds timeout);
  void accept();
  void set_listening(bool on);
  void maybe_listen();
  void remove_client(ClientConn& c);

  // The topology to use for the next request; refreshed only when a reload published a new one.
  const std::shared_ptr<const Topology>& current();
  std::shared_ptr<Pool>& pool(const std::shared_ptr<Backend>& b);
  // The warmest idle connection that has not idled too long, or null.
  std::unique_ptr<NodeConn> take_idle(Pool& pool);
  // A new connection, connected or connecting; null with `error` set when that failed at once.
  std::unique_ptr<NodeConn> connect(const std::shared_ptr<Pool>& pool, std::string& error);
  // Back to its pool if it can carry another request, else closed.
  void release(std::unique_ptr<NodeConn> c, bool reusable);
  // An idle connection the node closed (or spoke on, unasked).
  void drop_idle(NodeConn& c);
};

namespace {

enum class Outcome { connect_failed, timeout, bad_response };

// Beast's parsers, for the messages the scanners decline: made on first need, kept for the
// connection's life.
struct Fallback {
  net::RawHead req_head;
  std::string req_body;
  std::optional<net::RawParser<true>> req_parser;
  bool continue_sent = false;
  net::RawHead ans_head;
  std::string ans_body;
  std::optional<net::RawParser<false>> ans_parser;
};

// One client connection and the exchange it is in. The stages:
//   idle        waiting for a request's first byte (the idle deadline; a drain closes it)
//   reading     a request has begun (header, then body deadline)
//   forwarding  at a node, or two during a rebalance (connect, then response deadline)
//   writing     the answer did not all fit into the socket (write deadline)
//   closing     a refused request: its answer is written, then what the client still sends is read
//               and dropped for a moment, so that it reads the answer rather than a reset
struct ClientConn final : net::EventLoop::Handler {
  enum class Stage { idle, reading, forwarding, writing, closing };
  enum class Parse { more, exchange };

  ClientConn(DataPath::Worker& w, int f, std::string peer) : w_(w), fd_(f), peer_(std::move(peer)) {}
  ~ClientConn() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void on_events(std::uint32_t events) override;
  void on_node_events(std::uint32_t events);
  void on_deadline();
  bool idle() const { return stage_ == Stage::idle && in_.empty(); }
  // Gives the buffer back while idle (the worker's tick: a busy connection keeps its block).
  void trim() {
    if (idle()) in_.release(w_.blocks);
  }
  void close();

  std::list<std::unique_ptr<ClientConn>>::iterator self;
  Clock::time_point deadline = Clock::time_point::max();

 private:
  // Reading requests
  void drive();
  void read();
  Parse parse();
  void start_request_fallback();
  Parse feed_request_fallback();
  void reject(const net::Rejection& r);
  void begin_linger();
  void linger();

  // The exchange
  void begin_exchange();
  void start_step(bool pooled_ok);
  void send_request();
  bool flush_node();
  void read_answer();
  // false: the answer is not complete yet (or the exchange went on without it)
  bool parse_answer(bool eof, int error);
  bool feed_answer_fallback(bool eof, int error);
  void answer_failed(int error, std::string detail);
  void answer_ready(std::string_view body, std::size_t consumed, bool node_keep_alive);
  void node_failed(Outcome outcome, const std::string& detail);
  void drop_node();
  void local_answer(unsigned status, std::string_view content_type, std::string_view body);
  void send_answer(std::string_view head_and_body, std::string_view more);
  void finish_exchange();
  Backend& step_backend() const { return **steps_[step_].backend; }

  // Writing to the client
  bool write(std::string_view a, std::string_view b = {});  // false: closed
  bool flush();                                              // false: closed

  DataPath::Worker& w_;
  int fd_;
  std::string peer_;  // for the access log
  Stage stage_ = Stage::idle;
  bool closed_ = false;
  bool driving_ = false;
  bool readable_ = false;   // epoll said so and recv has not yet come back empty
  bool eof_ = false;        // the client has half-closed
  bool out_watched_ = false;
  IoBuffer in_;
  std::string pending_;  // answer bytes the socket did not take yet
  std::size_t pending_at_ = 0;
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

void NodeConn::on_events(std::uint32_t events) {
  // The FIN may come in the same event as the answer before it: the answer is relayed, the
  // connection is not pooled.
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) peer_closed = true;
  if (owner) {
    owner->on_node_events(events);
  } else if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    worker.drop_idle(*this);
  }
}

void Listener::on_events(std::uint32_t) { worker.accept(); }

// ---- reading requests ---------------------------------------------------------------------------

void ClientConn::on_events(std::uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && pending_at_ < pending_.size()) {
    if (!flush()) return;
    if (pending_at_ == pending_.size()) {
      if (stage_ == Stage::writing) finish_exchange();
      else if (stage_ == Stage::closing && linger_bytes_ == 0) begin_linger();
    }
    if (closed_) return;
  }
  drive();
}

// Reads and parses until the connection waits for bytes or an exchange is under way. A request
// answered at once (a local answer) ends in finish_exchange(), which calls drive() again: that call
// returns at once and this loop takes the next request, so pipelined requests never recurse.
void ClientConn::drive() {
  if (driving_) return;
  driving_ = true;
  while (!closed_) {
    if (stage_ == Stage::closing) {
      if (readable_ && linger_bytes_ > 0) linger();
      break;
    }
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
    if (!readable_ || in_.size() >= w_.max_request) {  // (the second cannot be: see max_request)
      if (stage_ == Stage::idle) deadline = w_.loop.now() + w_.opt.client.idle_timeout;
      break;
    }
    read();
  }
  driving_ = false;
}

void ClientConn::read() {
  for (;;) {
    const auto space = in_.prepare(w_.blocks, kMinRecv);
    const ssize_t n = ::recv(fd_, space.data(), space.size(), 0);
    if (n > 0) {
      in_.commit(static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < space.size()) {
        readable_ = false;  // drained: the next bytes bring a new edge
        return;
      }
      if (in_.size() >= w_.max_request) return;  // still readable: the rest waits for the parser
      continue;
    }
    if (n == 0) {
      eof_ = true;
      readable_ = false;
      return;
    }
    if (errno == EINTR) continue;
    readable_ = false;
    if (errno != EAGAIN && errno != EWOULDBLOCK) eof_ = true;  // reset: as good as gone
    return;
  }
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
    const ScanResult r = scan_request(in_.view(), limits.header_limit, req_);
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
  boost::beast::error_code ec;
  while (!in_.empty() && !p.is_done()) {
    const std::size_t used = p.put(boost::asio::buffer(in_.data(), in_.size()), ec);
    in_.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || used == 0) break;
  }
  if (p.is_header_done() && !head_done_) {
    head_done_ = true;
    req_version_ = fb_->req_head.version;
    deadline = w_.loop.now() + w_.opt.client.body_timeout;
  }
  if (ec) {
    req_fallback_ = false;
    if (auto r = net::rejection_for(ec, p.is_header_done())) reject(*r);
    else close();
    return Parse::exchange;
  }
  if (!p.is_done()) {
    // Clients that wait for "100 Continue" (curl, for large bodies) send the body only then.
    if (p.is_header_done() && !fb_->continue_sent && iequal(fb_->req_head.find(http::field::expect), "100-continue")) {
      fb_->continue_sent = true;
      if (!write("HTTP/1.1 100 Continue\r\n\r\n"sv)) return Parse::exchange;
    }
    return Parse::more;
  }
  req_fallback_ = false;
  net::view_of(fb_->req_head, req_);
  req_.keep_alive = p.keep_alive();
  req_.content_length = fb_->req_body.size();
  req_body_ = fb_->req_body;
  req_consumed_ = 0;  // Beast took the bytes already
  begin_exchange();
  return Parse::exchange;
}

void ClientConn::reject(const net::Rejection& r) {
  w_.counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
  const std::string body = json_error(r.detail);
  std::string& s = w_.scratch;
  s.clear();
  append_status_line(s, req_version_, static_cast<unsigned>(r.status), {});
  s.append("Content-Type: application/json\r\n"sv);
  append_content_length(s, body.size());
  end_head(s, req_version_, false);
  s.append(body);
  stage_ = Stage::closing;
  linger_bytes_ = 0;
  deadline = w_.loop.now() + w_.opt.client.write_timeout;
  if (!write(s)) return;
  if (pending_at_ == pending_.size()) begin_linger();
}

void ClientConn::begin_linger() {
  ::shutdown(fd_, SHUT_WR);
  in_.consume(in_.size());
  in_.release(w_.blocks);
  linger_bytes_ = 1;  // lingering: counts from 1
  deadline = w_.loop.now() + kLingerTimeout;
  readable_ = true;  // what came meanwhile may have brought no new edge
}

void ClientConn::linger() {
  char sink[16384];
  for (;;) {
    const ssize_t n = ::recv(fd_, sink, sizeof sink, 0);
    if (n > 0) {
      linger_bytes_ += static_cast<std::size_t>(n);
      deadline = w_.loop.now() + kLingerTimeout;
      if (linger_bytes_ > kLingerBytes) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      readable_ = false;
      return;
    }
    break;  // EOF or an error: done
  }
  close();
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
    if (!node_->connecting && w_.log) connect_ms_ = ms_since(connect_start_);
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
  std::string& s = w_.scratch;
  s.clear();
  const bool as_it_came = !req_.start_line.empty() && req_.version == 11;
  if (!as_it_came) s.append(req_.method_string).append(" "sv).append(req_.target).append(" HTTP/1.1\r\n"sv);
  const bool length = append_head(req_, as_it_came ? req_.start_line : std::string_view{}, s, true, "x-kv-tombstone");
  s.append(steps_[step_].fields);
  if (!length && (!req_body_.empty() || req_.method == Method::post || req_.method == Method::put))
    append_content_length(s, req_body_.size());
  s.append("\r\n"sv).append(req_body_);
  c.pending.clear();
  c.pending_at = 0;
  if (c.connecting) {
    c.pending.assign(s);  // sent once connected
    deadline = w_.loop.now() + w_.opt.connect_timeout;
    return;
  }
  // One budget for sending and the whole answer.
  if (w_.log) sent_ = Clock::now();
  deadline = w_.loop.now() + w_.opt.response_timeout;
  const ssize_t n = send_some(c.fd, s);
  if (n < 0) {
    answer_failed(errno, "");
    return;
  }
  if (static_cast<std::size_t>(n) < s.size()) c.pending.assign(s, static_cast<std::size_t>(n));
}

bool ClientConn::flush_node() {
  NodeConn& c = *node_;
  const ssize_t n = send_some(c.fd, std::string_view(c.pending).substr(c.pending_at));
  if (n < 0) {
    answer_failed(errno, "");
    return false;
  }
  c.pending_at += static_cast<std::size_t>(n);
  if (c.pending_at == c.pending.size()) {
    c.pending.clear();
    c.pending_at = 0;
  }
  return true;
}

void ClientConn::on_node_events(std::uint32_t events) {
  NodeConn& c = *node_;
  if (c.connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int error = 0;
    socklen_t len = sizeof error;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      node_failed(Outcome::connect_failed, "connect: " + os_message(error));
      return;
    }
    c.connecting = false;
    if (w_.log) {
      connect_ms_ = ms_since(connect_start_);
      sent_ = Clock::now();
    }
    deadline = w_.loop.now() + w_.opt.response_timeout;
  }
  if (c.pending_at < c.pending.size() && !flush_node()) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_answer();
}

void ClientConn::read_answer() {
  for (;;) {
    NodeConn& c = *node_;
    bool eof = false, drained = false;
    int error = 0;
    while (c.in.size() < kMaxAnswerBuffered) {
      const auto space = c.in.prepare(w_.blocks, kMinRecv);
      const ssize_t n = ::recv(c.fd, space.data(), space.size(), 0);
      if (n > 0) {
        c.in.commit(static_cast<std::size_t>(n));
        got_answer_bytes_ = true;
        if (static_cast<std::size_t>(n) < space.size()) {
          drained = true;
          break;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      drained = true;
      if (n == 0) eof = true;
      else if (errno != EAGAIN && errno != EWOULDBLOCK) error = errno;
      break;
    }
    // Done, or the exchange went on (a retry, the next step, an error answer): that is all here.
    if (parse_answer(eof, error) || !node_ || &c != node_.get()) return;
    if (drained) return;  // the rest comes with the next event
  }
}

bool ClientConn::parse_answer(bool eof, int error) {
  NodeConn& c = *node_;
  // Most answers take the fast path; anything else (and any answer to HEAD, which has no body
  // whatever its Content-Length says) goes to Beast's parser from its first byte.
  if (!ans_fallback_ && req_.method != Method::head) {
    const ScanResult r = scan_response(c.in.view(), kAnswerHeaderLimit, ans_);
    const auto limit = std::min<std::uint64_t>(kFastPathMaxBody, w_.opt.max_response_bytes);
    if (r == ScanResult::complete && ans_.content_length <= limit) {
      if (first_byte_ms_ < 0 && w_.log) first_byte_ms_ = ms_since(sent_);
      const std::size_t total = ans_.head_size + static_cast<std::size_t>(ans_.content_length);
      if (c.in.size() >= total) {
        answer_ready(c.in.view().substr(ans_.head_size, static_cast<std::size_t>(ans_.content_length)), total,
                     ans_.keep_alive);
        return true;
      }
    } else if (r != ScanResult::need_more) {
      ans_fallback_ = true;
      if (!fb_) fb_ = std::make_unique<Fallback>();
      fb_->ans_parser.reset();
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
  boost::beast::error_code ec;
  for (;;) {
    auto& p = *fb_->ans_parser;
    while (!c.in.empty() && !p.is_done()) {
      const std::size_t used = p.put(boost::asio::buffer(c.in.data(), c.in.size()), ec);
      c.in.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec || used == 0) break;
    }
    if (ec) break;
    // Interim answers (1xx) are not the answer: skip them and read on.
    if (p.is_done() && fb_->ans_head.status / 100 == 1) {
      fresh();
      continue;
    }
    if (p.is_header_done() && first_byte_ms_ < 0 && w_.log) first_byte_ms_ = ms_since(sent_);
    if (p.is_done()) {
      net::view_of(fb_->ans_head, ans_);
      ans_.keep_alive = p.keep_alive();
      const bool keep = p.keep_alive();
      fb_->ans_parser.reset();
      answer_ready(fb_->ans_body, 0, keep);
      return true;
    }
    if (eof) {
      if (p.got_some()) p.put_eof(ec);  // complete (a body up to EOF) or partial_message
      if (!ec && p.is_done()) continue;
      if (!ec) ec = http::error::partial_message;
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

// The node closed, failed or sent something unreadable. A pooled connection that the node had
// already closed, before any byte of an answer, is retried once on a fresh connection; nothing else
// is retried.
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
  w_.release(std::move(node_), false);
}

void ClientConn::answer_ready(std::string_view body, std::size_t consumed, bool node_keep_alive) {
  Backend& b = step_backend();
  const unsigned code = ans_.status;
  if (step_ + 1 < nsteps_) {
    // The first owner of a write during a rebalance: only if it took the write does it go on.
    const bool proceed = code / 100 == 2 || (code == 404 && req_.method == Method::delete_);
    if (proceed) {
      b.stats.response(code);
      node_->in.consume(consumed);
      active_ = false;
      b.stats.pool_active.fetch_sub(1, std::memory_order_relaxed);
      node_->owner = nullptr;
      w_.release(std::move(node_), node_keep_alive);
      ++step_;
      start_step(true);
      return;
    }
    // It refused or failed: the client gets that, and the write goes no further.
  }
  std::string& s = w_.scratch;
  s.clear();
  const bool as_it_came = !ans_.start_line.empty() && ans_.version == req_.version;
  if (!as_it_came) append_status_line(s, req_.version, code, ans_.reason);
  const bool length = append_head(ans_, as_it_came ? ans_.start_line : std::string_view{}, s, false, "x-kv-node");
  s.append(b.node_field);
  if (req_.method == Method::head) {
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
  answer_status_ = code;
  answer_bytes_ = body.size();
  answered_by_ = &b;
  b.stats.response(code);
  b.stats.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - read_done_).count()));
  // Small bodies travel in one buffer with the head; a large one from Beast's parser goes from where
  // it is. A body in the node's buffer is copied out before the connection goes back to its pool.
  std::string_view more;
  if (req_.method != Method::head) {
    if (consumed == 0 && body.size() > 2048) more = body;
    else s.append(body);
  }
  node_->in.consume(consumed);
  active_ = false;
  b.stats.pool_active.fetch_sub(1, std::memory_order_relaxed);
  node_->owner = nullptr;
  w_.release(std::move(node_), node_keep_alive);
  send_answer(s, more);
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
  std::string& s = w_.scratch;
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
  send_answer(s, {});
}

void ClientConn::send_answer(std::string_view head_and_body, std::string_view more) {
  stage_ = Stage::writing;
  if (!write(head_and_body, more)) return;
  if (pending_at_ < pending_.size()) {
    deadline = w_.loop.now() + w_.opt.client.write_timeout;
    return;
  }
  finish_exchange();
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
  if (!answer_keep_alive_) {
    ::shutdown(fd_, SHUT_WR);  // FIN after the last answer
    close();
    return;
  }
  drive();
}

// ---- writing to the client ----------------------------------------------------------------------

bool ClientConn::write(std::string_view a, std::string_view b) {
  std::size_t sent = 0;
  if (pending_at_ == pending_.size()) {
    const ssize_t n = send_some(fd_, a, b);
    if (n < 0) {
      close();
      return false;
    }
    sent = static_cast<std::size_t>(n);
    if (sent == a.size() + b.size()) return true;
    pending_.clear();
    pending_at_ = 0;
  }
  // What the kernel did not take waits for EPOLLOUT.
  if (sent < a.size()) {
    pending_.append(a.substr(sent));
    pending_.append(b);
  } else {
    pending_.append(b.substr(sent - a.size()));
  }
  if (!out_watched_) {
    out_watched_ = true;
    w_.loop.modify(fd_, *this, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  }
  return true;
}

bool ClientConn::flush() {
  const ssize_t n = send_some(fd_, std::string_view(pending_).substr(pending_at_));
  if (n < 0) {
    close();
    return false;
  }
  pending_at_ += static_cast<std::size_t>(n);
  if (pending_at_ == pending_.size()) {
    pending_.clear();
    pending_at_ = 0;
    if (pending_.capacity() > 64 * 1024) pending_.shrink_to_fit();
  }
  return true;
}

void ClientConn::on_deadline() {
  deadline = Clock::time_point::max();
  switch (stage_) {
    case Stage::idle:
      close();  // keep-alive idle timeout
      break;
    case Stage::reading:
      req_fallback_ = false;
      reject({http::status::request_timeout,
              head_done_ ? "Timed out reading request body" : "Timed out reading request headers"});
      drive();  // lingering: read what came meanwhile
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

void ClientConn::close() {
  if (closed_) return;
  closed_ = true;
  drop_node();
  topology_.reset();
  ::close(fd_);
  fd_ = -1;
  in_.consume(in_.size());
  in_.release(w_.blocks);
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
      for (auto& c : p->idle) loop.retire(std::move(c));
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
    loop.retire(std::move(c));
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
  bool connecting = false;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&ep.address), ep.size) != 0) {
    if (errno != EINPROGRESS) {
      error = "connect: " + os_message(errno);
      ::close(fd);
      return nullptr;
    }
    connecting = true;
  }
  auto c = std::make_unique<NodeConn>(*this, pool, fd);
  c->connecting = connecting;
  try {
    loop.add(fd, *c, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  } catch (const std::system_error& e) {
    error = std::string("connect: ") + e.what();
    return nullptr;  // not registered: destroyed at once, closing the socket
  }
  return c;
}

void DataPath::Worker::release(std::unique_ptr<NodeConn> c, bool reusable) {
  Pool& p = *c->pool;
  if (reusable && !c->peer_closed && c->in.empty() && c->pending.empty() && p.idle.size() < opt.max_idle_per_node &&
      !p.backend->retired.load(std::memory_order_relaxed)) {
    c->idle_since = loop.now();  // its buffer goes back to the block pool at the next tick
    p.idle.push_back(std::move(c));
    p.backend->stats.pool_idle.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  loop.retire(std::move(c));
}

void DataPath::Worker::drop_idle(NodeConn& c) {
  auto& idle = c.pool->idle;
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if (it->get() != &c) continue;
    c.pool->backend->stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    loop.retire(std::move(*it));
    idle.erase(it);
    return;
  }
}

void DataPath::Worker::accept() {
  for (int i = 0; i < 64; ++i) {  // then let the connections already open have their turn
    if (dp.open_.load(std::memory_order_relaxed) >= opt.maxconn) {
      // At maxconn, stop accepting: new clients wait in the kernel's backlog, not in our memory.
      set_listening(false);
      return;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd = ::accept4(dp.listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE and friends: back off instead of spinning; the backlog holds the clients meanwhile.
      std::cerr << "kvproxy: accept: " << os_message(errno) << std::endl;
      set_listening(false);
      accept_pause_until = loop.now() + std::chrono::milliseconds(50);
      return;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    dp.open_.fetch_add(1, std::memory_order_relaxed);
    counters.client_open.fetch_add(1, std::memory_order_relaxed);
    counters.client_total.fetch_add(1, std::memory_order_relaxed);
    auto& c = *clients.emplace_back(std::make_unique<ClientConn>(*this, fd, log ? peer_text(peer) : std::string()));
    c.self = std::prev(clients.end());
    c.deadline = loop.now() + opt.client.idle_timeout;
    try {
      loop.add(fd, c, EPOLLIN | EPOLLRDHUP | EPOLLET);
    } catch (const std::system_error& e) {
      std::cerr << "kvproxy: " << e.what() << std::endl;
      c.close();
    }
  }
}

void DataPath::Worker::set_listening(bool on) {
  if (on == listening) return;
  listening = on;
  if (!on) {
    loop.remove(dp.listen_fd_);
    return;
  }
  // Level-triggered, so that a backlog left when accepting paused is seen at once. With several
  // workers on one listener, EPOLLEXCLUSIVE wakes one of them per connection, not all.
  loop.add(dp.listen_fd_, listener, EPOLLIN | (dp.workers_.size() > 1 ? EPOLLEXCLUSIVE : 0u));
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
  loop.retire(std::move(*it));
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
      loop.retire(std::move(p->idle.front()));
      p->idle.pop_front();
      p->backend->stats.pool_idle.fetch_sub(1, std::memory_order_relaxed);
    }
    for (auto& c : p->idle) c->in.release(blocks);
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
  maybe_listen();
  loop.run(kTick, [this] { tick(); });
  clients.clear();  // the loop has stopped: nothing refers to them any more
  for (auto& p : pools)
    if (p) p->idle.clear();
}

// ---- DataPath -----------------------------------------------------------------------------------

DataPath::DataPath(State& state, ProxyOptions options, unsigned threads, AccessLog* log)
    : state_(state), opt_(std::move(options)), log_(log) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i) workers_.push_back(std::make_unique<Worker>(*this));
}

DataPath::~DataPath() {
  join();
  workers_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

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
