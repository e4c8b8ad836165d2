// bench/loadgen: an open-loop HTTP/1.1 load generator, the instrument of bench/equal_load.py. It
// measures latency at a fixed OFFERED load, the way a user feels it, not at whatever load a closed
// loop (wrk, h2load --rps) happens to reach.
//
// The schedule. C keep-alive connections, R requests a second each. Request slot g (g = 0, 1, ...) is
// due at t0 + g / (C*R) seconds and belongs to connection g % C: each connection sends every 1/R s,
// the connections staggered evenly within that period, so together they tick every 1/(C*R) s. A slot
// is due at its time whatever the answers do. HTTP/1.1 without pipelining lets a connection carry one
// request at a time, so a slot that falls due while its connection still waits for an answer (or is
// reconnecting) is queued and sent the moment the connection is free: such a request is LATE, and its
// latency still counts from its SCHEDULED time. So queueing in the server shows as latency, and a
// stall of D ms shows as about D*C*R requests that waited up to D ms, not as the one request per
// connection that a closed loop would record (no coordinated omission).
//
// Slots scheduled in [0, warm-up) are sent but not recorded; the slots of the next `seconds` are the
// measurement. After the last slot the generator waits for every answer still owed (up to --timeout-ms
// after the end of the window); a measured request never answered is counted as unfinished.
//
// What it prints: a readable summary, then one line `LOADGEN {json}` for scripts, with
//   offered_rps     C*R;  scheduled: the measured slots (C*R*seconds)
//   achieved_rps    answers received inside the measurement window / its length
//   p50 p90 p99 p999 max mean   latency of the measured requests, microseconds, from scheduled time to
//                   the answer's last byte (every complete HTTP answer, whatever its status; exact
//                   nearest-rank percentiles over all samples, no histogram buckets)
//   late            measured requests that were due while their connection was busy (sent late)
//   on_time         measured requests that were not late; lag_p99, lag_max: for those, how far
//                   after its scheduled time the generator itself sent each (its own timer accuracy, us;
//                   0 when on_time is 0)
//   status_errors   non-2xx answers; read_errors: connections closed or failed with a request out;
//   connect_errors  failed connection attempts; timeouts: no answer within --timeout-ms;
//   unfinished      measured slots neither answered nor failed when the run ended
//   cpu_s, cpu_util its own user+system CPU time from t0 to the end (getrusage), and that over the wall
//                   time: how far the generator stayed from saturating its one core
//   answered_total  every answer of the run, warm-up and drain included (to divide a server's CPU by)
//
// Checking the instrument (bench/equal_load.py runs both in its instrument checks, also in --quick):
//  - rate accuracy: against a server that keeps up (a kvnode straight on), achieved_rps must be within
//    1% of offered_rps, with no errors. The schedule is exact by construction; what can break it is the
//    generator falling behind (lag_p99, lag_max) or the server not keeping up (late: when more than half
//    of the requests are late the server or the machine fell behind, and the point is inconclusive).
//  - coordinated omission: the server is stopped (SIGSTOP) for D ms inside a run of S s. Requests due
//    during the stall wait from D down to 0 ms, so a share (D - x)/S of all requests waits more than x:
//    p99 must come out near D - 0.01*S. An instrument that times from the send would show a p99 of
//    ordinary latency instead.
//
//   loadgen --port P [--host 127.0.0.1] --conns C --rate R [--seconds S] [--warmup W] [--keys N]
//           [--key-prefix bench:] [--put-percent P] [--seed N] [--timeout-ms T]
//
// Requests: `GET /get?key=<prefix><k>`, or with probability --put-percent `POST /put?key=<prefix><k>`
// with bench/lua/mixed.lua's body; k uniform in 1..N. Each connection has its own random stream (seeded
// with --seed and its index), so every system measured with the same seed gets the same keys and mix.
// One thread, epoll, timers through epoll_pwait2 with nanosecond timeouts and 1 ns timer slack.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kPutBody = R"({"value":"benchmark value of about fifty bytes, fixed size."})";
constexpr size_t kMaxHead = 64 * 1024;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int conns = 10;
  double rate = 100;  // per connection, requests a second
  double seconds = 5;
  double warmup = 1;
  long keys = 10000;
  std::string prefix = "bench:";
  int put_percent = 0;
  std::uint64_t seed = 1;
  long timeout_ms = 5000;
};

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double cpu_seconds(double* user, double* sys) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
  *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  return *user + *sys;
}

std::uint64_t splitmix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// One HTTP/1.1 answer at the front of a buffer. Content-Length and chunked bodies; an answer that
// would need reading to the close is refused (none of the servers measured sends one).
struct Answer {
  enum Result { kIncomplete, kComplete, kMalformed } result = kIncomplete;
  int status = 0;
  size_t size = 0;     // bytes of the whole message
  bool close = false;  // Connection: close
};

bool header_is(std::string_view line, std::string_view name, std::string_view* value) {
  if (line.size() <= name.size() || line[name.size()] != ':' || strncasecmp(line.data(), name.data(), name.size()) != 0)
    return false;
  std::string_view v = line.substr(name.size() + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  *value = v;
  return true;
}

Answer parse_answer(std::string_view s) {
  Answer a;
  const size_t end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (s.size() > kMaxHead) a.result = Answer::kMalformed;
    return a;
  }
  if (s.size() < 12 || s.substr(0, 7) != "HTTP/1." || s[8] != ' ') {
    a.result = Answer::kMalformed;
    return a;
  }
  a.status = std::atoi(std::string(s.substr(9, 3)).c_str());
  long length = -1;
  bool chunked = false;
  for (size_t p = s.find("\r\n"); p < end;) {
    const size_t q = s.find("\r\n", p + 2);
    const std::string_view line = s.substr(p + 2, q - p - 2);
    std::string_view v;
    if (header_is(line, "content-length", &v)) length = std::strtol(std::string(v).c_str(), nullptr, 10);
    else if (header_is(line, "transfer-encoding", &v)) chunked = strncasecmp(v.data(), "chunked", 7) == 0;
    else if (header_is(line, "connection", &v)) a.close = strncasecmp(v.data(), "close", 5) == 0;
    p = q;
  }
  size_t at = end + 4;
  if (chunked) {
    for (;;) {
      const size_t eol = s.find("\r\n", at);
      if (eol == std::string_view::npos) return a;
      const unsigned long n = std::strtoul(std::string(s.substr(at, eol - at)).c_str(), nullptr, 16);
      if (n == 0) {  // the last chunk, then trailer lines up to an empty one
        if (s.size() < eol + 4) return a;
        if (s.substr(eol + 2, 2) == "\r\n") {
          a.size = eol + 4;
        } else {
          const size_t fin = s.find("\r\n\r\n", eol + 2);
          if (fin == std::string_view::npos) return a;
          a.size = fin + 4;
        }
        a.result = Answer::kComplete;
        return a;
      }
      if (s.size() < eol + 2 + n + 2) return a;
      at = eol + 2 + n + 2;
    }
  }
  if (length < 0) {
    if (a.status / 100 == 1 || a.status == 204 || a.status == 304) length = 0;
    else {
      a.result = Answer::kMalformed;
      return a;
    }
  }
  if (s.size() < at + static_cast<size_t>(length)) return a;
  a.size = at + static_cast<size_t>(length);
  a.result = Answer::kComplete;
  return a;
}

// kDown: no socket (waiting for retry_at); kConnecting: connect() in progress; kIdle: connected, nothing
// out; kBusy: one request out, its answer awaited.
enum class State { kDown, kConnecting, kIdle, kBusy };
enum class Lost { kRead, kTimeout };  // what a request lost with its connection counts as

struct Conn {
  int fd = -1;
  State state = State::kDown;
  std::uint64_t rng = 0;
  std::uint64_t next_slot = 0;  // the slot of the next request this connection sends
  std::uint32_t owed = 0;       // slots due and not yet sent (the connection was busy or down)
  std::int64_t retry_at = 0;
  // The request out:
  std::uint64_t slot = 0;
  std::int64_t sched_ns = 0;
  std::int64_t sent_ns = 0;
  std::string out;
  size_t out_done = 0;
  bool want_out = false;  // EPOLLOUT asked for: the request did not fit the socket at once
  std::string in;
};

struct Stats {
  std::vector<std::uint32_t> latency_us;  // measured requests answered
  std::vector<std::uint32_t> lag_us;      // measured requests sent on time: the generator's own delay
  std::uint64_t late = 0, status_errors = 0, read_errors = 0, connect_errors = 0, timeouts = 0;
  std::uint64_t answered_total = 0, answered_in_window = 0, gets = 0, puts = 0, sent_total = 0;
};

class Generator {
 public:
  explicit Generator(const Options& o) : o_(o) {
    interval_ns_ = 1e9 / (o.conns * o.rate);
    first_ = static_cast<std::uint64_t>(std::llround(o.warmup * o.conns * o.rate));
    end_ = first_ + static_cast<std::uint64_t>(std::llround(o.seconds * o.conns * o.rate));
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<std::uint16_t>(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &addr_.sin_addr) != 1) fail("--host: not an IPv4 address");
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    conns_.resize(static_cast<size_t>(o.conns));
    for (int i = 0; i < o.conns; ++i) {
      Conn& c = conns_[static_cast<size_t>(i)];
      c.next_slot = static_cast<std::uint64_t>(i);
      c.rng = o.seed * 0x100000001b3ULL + static_cast<std::uint64_t>(i);
    }
  }

  int run();

 private:
  [[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr, "loadgen: %s\n", what);
    std::exit(1);
  }
  std::int64_t sched(std::uint64_t slot) const {
    return t0_ + static_cast<std::int64_t>(std::llround(static_cast<double>(slot) * interval_ns_));
  }
  bool measured(std::uint64_t slot) const { return slot >= first_ && slot < end_; }

  void connect_now(Conn& c, std::int64_t now);
  void connect_failed(Conn& c, std::int64_t now, int error);
  void on_writable(Conn& c, std::int64_t now);
  void on_connected(Conn& c, std::int64_t now);
  void drop(Conn& c, std::int64_t now, Lost lost_as);
  void due(Conn& c, std::int64_t now);
  void send_next(Conn& c, std::int64_t now, bool on_time);
  void flush(Conn& c, std::int64_t now);
  void on_readable(Conn& c, std::int64_t now);
  void on_answer(Conn& c, const Answer& a, std::int64_t now);
  void housekeeping(std::int64_t now);
  void handle(epoll_event* events, int n);
  void watch(Conn& c, std::uint32_t events, int op);
  std::uint64_t outstanding() const;
  void report(double wall_s, double cpu_s, double user_s, double sys_s) const;

  Options o_;
  double interval_ns_ = 0;
  std::uint64_t first_ = 0, end_ = 0;  // measured slots: [first_, end_)
  std::int64_t t0_ = 0;
  std::int64_t window_begin_ = 0, window_end_ = 0;  // when the first measured slot and the one after the last fall due
  bool started_ = false;                              // the schedule runs
  sockaddr_in addr_{};
  int ep_ = -1;
  std::vector<Conn> conns_;
  Stats st_;
};

void Generator::watch(Conn& c, std::uint32_t events, int op) {
  epoll_event e{};
  e.events = events;
  e.data.ptr = &c;
  if (epoll_ctl(ep_, op, c.fd, &e) != 0) fail("epoll_ctl");
}

void Generator::connect_now(Conn& c, std::int64_t now) {
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) fail("socket");
  int on = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  c.in.clear();
  c.want_out = false;
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) == 0) {
    watch(c, EPOLLIN, EPOLL_CTL_ADD);
    on_connected(c, now);
  } else if (errno == EINPROGRESS) {
    c.state = State::kConnecting;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
  } else {
    connect_failed(c, now, errno);
  }
}

void Generator::connect_failed(Conn& c, std::int64_t now, int error) {
  ++st_.connect_errors;
  if (!started_) {  // before the schedule starts: the server is not there, say so and stop
    std::fprintf(stderr, "loadgen: connect to %s:%d: %s\n", o_.host.c_str(), o_.port, std::strerror(error));
    std::exit(1);
  }
  close(c.fd);
  c.fd = -1;
  c.state = State::kDown;
  c.retry_at = now + 100'000'000;  // a refused connect is retried every 100 ms, not in a tight loop
}

void Generator::on_writable(Conn& c, std::int64_t now) {
  if (c.state == State::kConnecting) {
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) return connect_failed(c, now, error);
    watch(c, EPOLLIN, EPOLL_CTL_MOD);
    return on_connected(c, now);
  }
  if (c.state == State::kBusy) flush(c, now);
}

void Generator::on_connected(Conn& c, std::int64_t now) {
  c.state = State::kIdle;
  if (c.owed > 0) send_next(c, now, false);
}

// Closes the connection and opens another; a request out on it is lost and counted as `lost_as`.
void Generator::drop(Conn& c, std::int64_t now, Lost lost_as) {
  if (c.state == State::kBusy && measured(c.slot)) {
    if (lost_as == Lost::kTimeout) ++st_.timeouts;
    else ++st_.read_errors;
  }
  if (c.fd >= 0) close(c.fd);  // also takes it out of the epoll set
  c.fd = -1;
  c.state = State::kDown;
  c.out.clear();
  connect_now(c, now);
}

// Slot c.next_slot fell due now.
void Generator::due(Conn& c, std::int64_t now) {
  ++c.owed;
  if (c.state == State::kIdle) send_next(c, now, true);
  else if (c.state == State::kDown && now >= c.retry_at) connect_now(c, now);
}

// Sends the oldest slot this connection owes; `on_time`: it is being sent as it falls due, not after
// waiting for the connection.
void Generator::send_next(Conn& c, std::int64_t now, bool on_time) {
  c.slot = c.next_slot;
  c.next_slot += static_cast<std::uint64_t>(o_.conns);
  --c.owed;
  c.sched_ns = sched(c.slot);
  c.sent_ns = now;
  const bool put = static_cast<int>(splitmix64(c.rng) % 100) < o_.put_percent;
  const long key = 1 + static_cast<long>(splitmix64(c.rng) % static_cast<std::uint64_t>(o_.keys));
  char buf[512];
  const int n = put ? std::snprintf(buf, sizeof buf,
                                    "POST /put?key=%s%ld HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                                    "Content-Length: %zu\r\n\r\n%.*s",
                                    o_.prefix.c_str(), key, o_.host.c_str(), o_.port, kPutBody.size(),
                                    static_cast<int>(kPutBody.size()), kPutBody.data())
                    : std::snprintf(buf, sizeof buf, "GET /get?key=%s%ld HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                                    o_.prefix.c_str(), key, o_.host.c_str(), o_.port);
  c.out.assign(buf, static_cast<size_t>(n));
  c.out_done = 0;
  c.state = State::kBusy;
  ++st_.sent_total;
  if (measured(c.slot)) {
    ++(put ? st_.puts : st_.gets);
    if (on_time) st_.lag_us.push_back(static_cast<std::uint32_t>((now - c.sched_ns) / 1000));
    else ++st_.late;
  }
  flush(c, now);
}

void Generator::flush(Conn& c, std::int64_t now) {
  while (c.out_done < c.out.size()) {
    const ssize_t k = send(c.fd, c.out.data() + c.out_done, c.out.size() - c.out_done, MSG_NOSIGNAL);
    if (k > 0) {
      c.out_done += static_cast<size_t>(k);
    } else if (k < 0 && errno == EAGAIN) {
      if (!c.want_out) watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
      c.want_out = true;
      return;
    } else {
      return drop(c, now, Lost::kRead);
    }
  }
  if (c.want_out) watch(c, EPOLLIN, EPOLL_CTL_MOD);
  c.want_out = false;
}

void Generator::on_readable(Conn& c, std::int64_t now) {
  char buf[16384];
  for (;;) {
    const ssize_t k = recv(c.fd, buf, sizeof buf, 0);
    if (k > 0) {
      c.in.append(buf, static_cast<size_t>(k));
      if (static_cast<size_t>(k) < sizeof buf) break;
    } else if (k < 0 && errno == EAGAIN) {
      break;
    } else {  // closed or failed: an answer cut short is lost, an idle connection just reopens
      return drop(c, now, Lost::kRead);
    }
  }
  while (!c.in.empty()) {
    if (c.state != State::kBusy) return drop(c, now, Lost::kRead);  // bytes nobody asked for
    const Answer a = parse_answer(c.in);
    if (a.result == Answer::kIncomplete) return;
    if (a.result == Answer::kMalformed) return drop(c, now, Lost::kRead);
    c.in.erase(0, a.size);
    on_answer(c, a, now);
    if (c.state == State::kDown || c.fd < 0) return;
  }
}

void Generator::on_answer(Conn& c, const Answer& a, std::int64_t now) {
  ++st_.answered_total;
  if (now >= window_begin_ && now < window_end_) ++st_.answered_in_window;
  if (measured(c.slot)) {
    st_.latency_us.push_back(static_cast<std::uint32_t>((now - c.sched_ns) / 1000));
    if (a.status / 100 != 2) ++st_.status_errors;
  }
  c.state = State::kIdle;
  if (a.close) return drop(c, now, Lost::kRead);  // nothing is out: nothing is counted
  if (c.owed > 0) send_next(c, now, false);
}

// Every 10 ms: requests out longer than --timeout-ms, and connections to reopen.
void Generator::housekeeping(std::int64_t now) {
  for (Conn& c : conns_) {
    if (c.state == State::kBusy && now - c.sent_ns > o_.timeout_ms * 1'000'000) drop(c, now, Lost::kTimeout);
    else if (c.state == State::kDown && now >= c.retry_at) connect_now(c, now);
  }
}

std::uint64_t Generator::outstanding() const {
  std::uint64_t n = 0;
  for (const Conn& c : conns_) n += c.owed + (c.state == State::kBusy ? 1 : 0);
  return n;
}

void Generator::handle(epoll_event* events, int n) {
  for (int i = 0; i < n; ++i) {
    Conn& c = *static_cast<Conn*>(events[i].data.ptr);
    const std::int64_t now = now_ns();  // per event: the ones before it took time
    if (c.fd < 0) continue;
    if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      if (c.state == State::kConnecting) {
        on_writable(c, now);
        continue;
      }
      if (events[i].events & EPOLLOUT) on_writable(c, now);
    }
    if (c.fd >= 0 && c.state != State::kConnecting && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
      on_readable(c, now);
  }
}

int Generator::run() {
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake-ups at the asked nanosecond, not up to 50 us later
  epoll_event events[256];
  std::int64_t now = now_ns();
  for (Conn& c : conns_) connect_now(c, now);
  const std::int64_t connect_deadline = now + 5'000'000'000LL;
  for (;;) {
    const bool ready = std::all_of(conns_.begin(), conns_.end(), [](const Conn& c) { return c.state == State::kIdle; });
    if (ready) break;
    if (now_ns() > connect_deadline) fail("connections not established within 5 s");
    const int n = epoll_wait(ep_, events, 256, 10);
    if (n < 0 && errno != EINTR) fail("epoll_wait");
    handle(events, std::max(n, 0));
  }
  started_ = true;
  t0_ = now_ns() + 1'000'000;  // the first slot is not due before the loop is waiting for it
  window_begin_ = sched(first_);
  window_end_ = sched(end_);
  double user0, sys0, user1, sys1;
  const double cpu0 = cpu_seconds(&user0, &sys0);
  std::uint64_t g = 0;  // the next slot to fall due
  std::int64_t next_housekeeping = t0_ + 10'000'000;
  for (;;) {
    now = now_ns();
    for (; g < end_ && sched(g) <= now; ++g) due(conns_[g % conns_.size()], now);
    if (now >= next_housekeeping) {
      housekeeping(now);
      next_housekeeping = now + 10'000'000;
    }
    if (g >= end_ && (outstanding() == 0 || now >= window_end_ + o_.timeout_ms * 1'000'000)) break;
    const std::int64_t wake = std::min(g < end_ ? sched(g) : now + 10'000'000, next_housekeeping);
    const std::int64_t wait = std::max<std::int64_t>(0, wake - now);
    const timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    const int n = epoll_pwait2(ep_, events, 256, &ts, nullptr);
    if (n < 0 && errno != EINTR) fail("epoll_pwait2");
    handle(events, std::max(n, 0));
  }
  const std::int64_t end = now_ns();
  const double cpu1 = cpu_seconds(&user1, &sys1);
  report((end - t0_) / 1e9, cpu1 - cpu0, user1 - user0, sys1 - sys0);
  return 0;
}

std::uint32_t percentile(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];  // nearest rank
}

void Generator::report(double wall_s, double cpu_s, double user_s, double sys_s) const {
  std::vector<std::uint32_t> lat = st_.latency_us, lag = st_.lag_us;
  std::sort(lat.begin(), lat.end());
  std::sort(lag.begin(), lag.end());
  const std::uint64_t scheduled = end_ - first_;
  const std::uint64_t answered = lat.size();
  const std::uint64_t unfinished = scheduled - std::min(scheduled, answered + st_.read_errors + st_.timeouts);
  const double window_s = (window_end_ - window_begin_) / 1e9;
  const double offered = o_.conns * o_.rate;
  const double achieved = st_.answered_in_window / window_s;
  double mean = 0;
  for (auto v : lat) mean += v;
  mean = lat.empty() ? 0 : mean / static_cast<double>(lat.size());
  const std::uint64_t errors = st_.status_errors + st_.read_errors + st_.connect_errors + st_.timeouts + unfinished;
  std::printf("loadgen: %d connections x %g req/s = %g req/s offered for %g s (after %g s of warm-up)\n", o_.conns,
              o_.rate, offered, o_.seconds, o_.warmup);
  std::printf("  achieved %.1f req/s (%+.2f%% of offered); %" PRIu64 " of %" PRIu64 " measured requests answered, %" PRIu64
              " sent late (%.2f%%), %" PRIu64 " errors\n",
              achieved, (achieved / offered - 1) * 100, answered, scheduled, st_.late,
              scheduled ? 100.0 * static_cast<double>(st_.late) / static_cast<double>(scheduled) : 0.0, errors);
  std::printf("  latency from the scheduled time, us: p50 %u  p90 %u  p99 %u  p99.9 %u  max %u  mean %.0f\n",
              percentile(lat, 50), percentile(lat, 90), percentile(lat, 99), percentile(lat, 99.9),
              lat.empty() ? 0 : lat.back(), mean);
  std::printf("  own send lag (requests sent on time), us: p99 %u  max %u;  own CPU %.3f s over %.2f s = %.1f%% of a core, "
              "%.2f us/request\n",
              percentile(lag, 99), lag.empty() ? 0 : lag.back(), cpu_s, wall_s, 100 * cpu_s / wall_s,
              st_.sent_total ? cpu_s * 1e6 / static_cast<double>(st_.sent_total) : 0.0);
  std::printf("LOADGEN {\"conns\":%d,\"rate\":%g,\"offered_rps\":%g,\"seconds\":%g,\"warmup\":%g,\"window_s\":%.6f,"
              "\"scheduled\":%" PRIu64 ",\"answered\":%" PRIu64 ",\"answered_in_window\":%" PRIu64 ",\"achieved_rps\":%.3f,"
              "\"answered_total\":%" PRIu64 ",\"sent_total\":%" PRIu64 ",\"gets\":%" PRIu64 ",\"puts\":%" PRIu64
              ",\"late\":%" PRIu64 ",\"status_errors\":%" PRIu64 ",\"read_errors\":%" PRIu64 ",\"connect_errors\":%" PRIu64
              ",\"timeouts\":%" PRIu64 ",\"unfinished\":%" PRIu64 ",\"errors\":%" PRIu64
              ",\"p50\":%u,\"p90\":%u,\"p99\":%u,\"p999\":%u,\"max\":%u,\"mean\":%.1f,\"on_time\":%zu,\"lag_p99\":%u,"
              "\"lag_max\":%u,"
              "\"cpu_s\":%.6f,\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f,\"wall_s\":%.6f,\"cpu_util\":%.5f}\n",
              o_.conns, o_.rate, offered, o_.seconds, o_.warmup, window_s, scheduled, answered, st_.answered_in_window,
              achieved, st_.answered_total, st_.sent_total, st_.gets, st_.puts, st_.late, st_.status_errors,
              st_.read_errors, st_.connect_errors, st_.timeouts, unfinished, errors, percentile(lat, 50),
              percentile(lat, 90), percentile(lat, 99), percentile(lat, 99.9), lat.empty() ? 0 : lat.back(), mean,
              lag.size(), percentile(lag, 99), lag.empty() ? 0 : lag.back(), cpu_s, user_s, sys_s, wall_s, cpu_s / wall_s);
  std::fflush(stdout);
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "loadgen: %s\nusage: loadgen --port P [--host 127.0.0.1] --conns C --rate R(per connection) "
               "[--seconds S] [--warmup W] [--keys N] [--key-prefix bench:] [--put-percent P] [--seed N] "
               "[--timeout-ms T]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("an open-loop HTTP/1.1 load generator (see the head of bench/loadgen.cpp)");
    if (i + 1 >= argc) usage("every option takes a value");
    const char* v = argv[i + 1];
    char* end = nullptr;
    const double num = std::strtod(v, &end);
    const bool numeric = end != v && *end == '\0';
    if (flag == "--host") o.host = v;
    else if (flag == "--key-prefix") o.prefix = v;
    else if (!numeric) usage("a number was expected");
    else if (flag == "--port") o.port = static_cast<int>(num);
    else if (flag == "--conns") o.conns = static_cast<int>(num);
    else if (flag == "--rate") o.rate = num;
    else if (flag == "--seconds") o.seconds = num;
    else if (flag == "--warmup") o.warmup = num;
    else if (flag == "--keys") o.keys = static_cast<long>(num);
    else if (flag == "--put-percent") o.put_percent = static_cast<int>(num);
    else if (flag == "--seed") o.seed = static_cast<std::uint64_t>(num);
    else if (flag == "--timeout-ms") o.timeout_ms = static_cast<long>(num);
    else usage("unknown option");
  }
  if (o.port <= 0 || o.port > 65535) usage("--port: 1..65535");
  if (o.conns < 1 || o.conns > 60000) usage("--conns: 1..60000");
  if (!(o.rate > 0) || !(o.seconds > 0) || !(o.warmup >= 0)) usage("--rate and --seconds > 0, --warmup >= 0");
  if (o.keys < 1 || o.put_percent < 0 || o.put_percent > 100 || o.timeout_ms < 1)
    usage("--keys >= 1, --put-percent 0..100, --timeout-ms >= 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Generator g(parse(argc, argv));
  return g.run();
}
