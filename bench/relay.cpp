// bench/relay: a measuring instrument, not a product. About the least work a key-routing HTTP/1.1
// proxy can do, so that bench/run.py can show what the proxies' CPU per request is made of.
//
// One thread, edge-triggered epoll, non-blocking sockets. Per request: one recv from the client; the
// end of the head, `key=` in the request line and Content-Length are found; a node is picked by
// hashing the key (FNV-1a modulo the node count: an even spread, not kvring's ring); one send of the
// bytes as received on a pooled connection to that node; one recv of the answer, one send of it as
// received to the client; the node connection goes back to its pool. The system calls and TCP
// segments per request are those of kvproxy, HAProxy and nginx (two recv, two send, four segments).
//
// Left out on purpose, because a real proxy pays for them and this measures what is left without:
// header validation and rewriting (hop-by-hop fields, Connection, Via), limits, deadlines, retries,
// Expect: 100-continue, chunked bodies, error answers, metrics and logging. A node that is down or
// a malformed message ends the process or the connection. Never put it in front of real clients.
//
//   relay [--spin-ns N] LISTEN_PORT NODE_PORT...        (everything on 127.0.0.1)
//
// --spin-ns N spins for N ns before each of the two sends of a request: user time that touches no
// memory and changes no order of events, to tell what a proxy's user time costs from what its
// structure costs.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace {

struct Conn {
  int fd = -1;
  bool upstream = false;
  bool dead = false;
  int node = -1;
  Conn* peer = nullptr;  // client <-> node connection while a request is in flight
  size_t have = 0;
  char buf[16384];
};

std::vector<sockaddr_in> nodes;
std::vector<std::vector<Conn*>> pools;
std::vector<Conn*> graveyard;  // freed after each batch of events, which may still name them
int ep = -1;
std::chrono::nanoseconds spin{0};

void spend_user_time() {
  if (spin.count() == 0) return;
  const auto until = std::chrono::steady_clock::now() + spin;
  while (std::chrono::steady_clock::now() < until) {
  }
}

void die(const char* what) {
  perror(what);
  std::exit(1);
}

void nonblocking(int fd) {
  int on = 1;
  if (ioctl(fd, FIONBIO, &on) != 0) die("ioctl");
}

void watch(Conn* c) {
  epoll_event e{};
  e.events = EPOLLIN | EPOLLET;
  e.data.ptr = c;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) != 0) die("epoll_ctl");
}

void bury(Conn* c) {
  if (c->dead) return;
  c->dead = true;
  close(c->fd);
  graveyard.push_back(c);
}

// Size of the complete message at the front of c->buf; 0 while incomplete.
size_t message_size(const Conn* c) {
  const std::string_view s(c->buf, c->have);
  const size_t end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  size_t body = 0;
  for (size_t p = s.find("\r\n"); p < end; p = s.find("\r\n", p + 2)) {
    if (end - p > 17 && strncasecmp(s.data() + p + 2, "content-length:", 15) == 0)
      body = std::strtoul(s.data() + p + 17, nullptr, 10);
  }
  return end + 4 + body <= c->have ? end + 4 + body : 0;
}

int pick_node(const Conn* c) {
  const std::string_view s(c->buf, c->have);
  const size_t line_end = s.find("\r\n");
  size_t i = s.substr(0, line_end).find("key=");
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a: any even spread will do for a floor
  for (i = i == std::string_view::npos ? line_end : i + 4; i < line_end && s[i] != ' ' && s[i] != '&'; ++i)
    h = (h ^ static_cast<std::uint8_t>(s[i])) * 1099511628211ULL;
  return static_cast<int>(h % nodes.size());
}

void send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EAGAIN) continue;  // never with these small messages; spin if it happens
    if (k <= 0) return;
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void consume(Conn* c, size_t n) {
  std::memmove(c->buf, c->buf + n, c->have - n);
  c->have -= n;
}

// Receives what is there; false when the peer closed or failed.
bool fill(Conn* c) {
  const ssize_t k = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
  if (k > 0) {
    c->have += static_cast<size_t>(k);
    return true;
  }
  return k < 0 && errno == EAGAIN;
}

void try_forward(Conn* client) {
  const size_t n = client->peer ? 0 : message_size(client);
  if (n == 0) return;
  const int node = pick_node(client);
  Conn* up;
  if (!pools[node].empty()) {
    up = pools[node].back();
    pools[node].pop_back();
  } else {
    up = new Conn;
    up->upstream = true;
    up->node = node;
    up->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(up->fd, reinterpret_cast<const sockaddr*>(&nodes[node]), sizeof nodes[node]) != 0) die("connect");
    int on = 1;
    setsockopt(up->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    nonblocking(up->fd);
    watch(up);
  }
  up->peer = client;
  client->peer = up;
  spend_user_time();
  send_all(up->fd, client->buf, n);
  consume(client, n);
}

void on_client(Conn* c) {
  if (!fill(c)) {
    if (c->peer) bury(c->peer);  // its answer has nobody to go to
    bury(c);
    return;
  }
  try_forward(c);
}

void on_node(Conn* up) {
  if (!fill(up)) {
    if (up->peer) bury(up->peer);  // mid-request: the client's answer is lost, so is the client
    else std::erase(pools[up->node], up);  // an idle connection the node closed
    bury(up);
    return;
  }
  const size_t n = message_size(up);
  if (n == 0 || !up->peer) return;
  Conn* client = up->peer;
  spend_user_time();
  send_all(client->fd, up->buf, n);
  consume(up, n);
  up->peer = nullptr;
  client->peer = nullptr;
  pools[up->node].push_back(up);
  try_forward(client);  // a pipelined next request, if any
}

}  // namespace

int main(int argc, char** argv) {
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "--spin-ns") == 0) {
    spin = std::chrono::nanoseconds(std::atol(argv[2]));
    first = 3;
  }
  if (argc < first + 2) {
    std::fprintf(stderr, "usage: relay [--spin-ns N] LISTEN_PORT NODE_PORT...\n");
    return 2;
  }
  for (int i = first + 1; i < argc; ++i) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[i])));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    nodes.push_back(a);
  }
  pools.resize(nodes.size());
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int on = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in la{};
  la.sin_family = AF_INET;
  la.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[first])));
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&la), sizeof la) != 0 || listen(lfd, 4096) != 0) die("listen");
  nonblocking(lfd);
  ep = epoll_create1(0);
  Conn listener;
  listener.fd = lfd;
  epoll_event le{};
  le.events = EPOLLIN;
  le.data.ptr = &listener;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
  epoll_event events[256];
  for (;;) {
    const int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (c == &listener) {
        for (int fd; (fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          auto* client = new Conn;
          client->fd = fd;
          watch(client);
          on_client(client);
        }
      } else if (!c->dead) {
        c->upstream ? on_node(c) : on_client(c);
      }
    }
    for (Conn* c : graveyard) delete c;
    graveyard.clear();
  }
}
