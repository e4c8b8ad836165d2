// net/listener.hpp: open_listener's socket (bound, listening, non-blocking, close-on-exec) and its
// refusals, word for word; AcceptGate's connection count and its pause after a failed accept(), on
// explicit time points (no sleeping).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "http/limits.hpp"
#include "net/listener.hpp"

using namespace kv;
using namespace kv::net;
using namespace std::chrono_literals;

namespace {

// Closes the descriptor at the end of the scope.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// What open_listener throws for `address`, or "" when it does not.
std::string refusal(const HostPort& address) {
  try {
    Fd l(open_listener(address).fd);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

int sockopt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  REQUIRE(::getsockopt(fd, level, name, &v, &len) == 0);
  return v;
}

// Everything written to std::cerr while it lives.
struct CaptureCerr {
  std::ostringstream text;
  std::streambuf* old = std::cerr.rdbuf(text.rdbuf());
  ~CaptureCerr() { std::cerr.rdbuf(old); }
};

}  // namespace

TEST_CASE("open_listener on 127.0.0.1:0: a free port, listening, non-blocking, close-on-exec", "[listener]") {
  const Listening l = open_listener({"127.0.0.1", 0});
  Fd guard(l.fd);
  REQUIRE(l.fd >= 0);
  CHECK(l.port != 0);
  CHECK(l.family == AF_INET);
  CHECK((::fcntl(l.fd, F_GETFL) & O_NONBLOCK) != 0);
  CHECK((::fcntl(l.fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(sockopt(l.fd, SOL_SOCKET, SO_ACCEPTCONN) == 1);
  CHECK(sockopt(l.fd, SOL_SOCKET, SO_REUSEADDR) == 1);
  CHECK(sockopt(l.fd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM);

  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  REQUIRE(::getsockname(l.fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0);
  CHECK(ntohs(bound.sin_port) == l.port);
  CHECK(ntohl(bound.sin_addr.s_addr) == INADDR_LOOPBACK);

  SECTION("nothing to accept yet: accept() does not block") {
    CHECK(::accept(l.fd, nullptr, nullptr) == -1);
    CHECK((errno == EAGAIN || errno == EWOULDBLOCK));
  }
  SECTION("a client connects, and the listener accepts it") {
    Fd client(::socket(AF_INET, SOCK_STREAM, 0));
    REQUIRE(client.fd >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(l.port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(client.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0);
    // On loopback the handshake is done when connect() returns: the connection waits in the backlog.
    Fd accepted(::accept(l.fd, nullptr, nullptr));
    CHECK(accepted.fd >= 0);
    REQUIRE(::write(client.fd, "x", 1) == 1);
    char c = 0;
    CHECK(::read(accepted.fd, &c, 1) == 1);
    CHECK(c == 'x');
  }
}

TEST_CASE("open_listener on [::1]:0: an IPv6 listener", "[listener]") {
  const Listening l = open_listener({"::1", 0});
  Fd guard(l.fd);
  CHECK(l.port != 0);
  CHECK(l.family == AF_INET6);
  CHECK(sockopt(l.fd, SOL_SOCKET, SO_ACCEPTCONN) == 1);
  sockaddr_in6 bound{};
  socklen_t len = sizeof bound;
  REQUIRE(::getsockname(l.fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0);
  CHECK(ntohs(bound.sin6_port) == l.port);
}

TEST_CASE("open_listener on a port in use: \"cannot listen on 127.0.0.1:P: Address already in use\"", "[listener]") {
  const Listening first = open_listener({"127.0.0.1", 0});
  Fd guard(first.fd);
  const std::string p = std::to_string(first.port);
  CHECK(refusal({"127.0.0.1", first.port}) == "cannot listen on 127.0.0.1:" + p + ": Address already in use");

  const Listening v6 = open_listener({"::1", 0});
  Fd guard6(v6.fd);
  CHECK(refusal({"::1", v6.port}) == "cannot listen on [::1]:" + std::to_string(v6.port) + ": Address already in use");
}

TEST_CASE("open_listener on a name: \"cannot listen on H:P: not an IP address\"", "[listener]") {
  CHECK(refusal({"example.invalid", 1}) == "cannot listen on example.invalid:1: not an IP address");
  CHECK(refusal({"localhost", 8080}) == "cannot listen on localhost:8080: not an IP address");
}

TEST_CASE("open_listener on an address this host does not have", "[listener]") {
  // 192.0.2.0/24 is TEST-NET-1: never a local address.
  CHECK(refusal({"192.0.2.1", 0}) == "cannot listen on 192.0.2.1:0: Cannot assign requested address");
}

TEST_CASE("AcceptGate: full at maxconn open connections, not full once one closes", "[listener][accept_gate]") {
  AcceptGate gate(3);
  const AcceptGate::Clock::time_point now{1h};
  CHECK(gate.open() == 0);
  CHECK_FALSE(gate.full());
  gate.opened();
  gate.opened();
  CHECK(gate.open() == 2);
  CHECK_FALSE(gate.full());
  CHECK(gate.may_accept(now));
  gate.opened();
  CHECK(gate.open() == 3);
  CHECK(gate.full());
  CHECK_FALSE(gate.may_accept(now));
  gate.closed();
  CHECK(gate.open() == 2);
  CHECK_FALSE(gate.full());
  CHECK(gate.may_accept(now));
}

TEST_CASE("AcceptGate: maxconn 0 is no limit", "[listener][accept_gate]") {
  AcceptGate unlimited;  // the default
  AcceptGate zero(0);
  for (int i = 0; i < 100'000; ++i) {
    unlimited.opened();
    zero.opened();
  }
  CHECK(unlimited.open() == 100'000);
  CHECK_FALSE(unlimited.full());
  CHECK_FALSE(zero.full());
  CHECK(zero.may_accept(AcceptGate::Clock::time_point{1h}));
}

TEST_CASE("AcceptGate: a failed accept() pauses accepting for kAcceptBackoff, then allows again", "[listener][accept_gate]") {
  REQUIRE(http::kAcceptBackoff == 50ms);
  AcceptGate gate(10);
  const AcceptGate::Clock::time_point t0{10h};
  CHECK(gate.may_accept(t0));
  CaptureCerr log;
  const auto until = gate.failed("kvproxy", EMFILE, t0);
  CHECK(until == t0 + http::kAcceptBackoff);
  CHECK_FALSE(gate.may_accept(t0));
  CHECK_FALSE(gate.may_accept(t0 + 49ms));
  CHECK_FALSE(gate.may_accept(until - 1ns));
  CHECK(gate.may_accept(until));
  CHECK(gate.may_accept(t0 + 1s));

  SECTION("a second failure during the pause pauses from its own time") {
    CHECK(gate.failed("kvproxy", ENFILE, t0 + 30ms) == t0 + 80ms);
    CHECK_FALSE(gate.may_accept(t0 + 79ms));
    CHECK(gate.may_accept(t0 + 80ms));
  }
  SECTION("after the pause, a full gate still does not accept") {
    for (int i = 0; i < 10; ++i) gate.opened();
    CHECK_FALSE(gate.may_accept(t0 + 1s));
    gate.closed();
    CHECK(gate.may_accept(t0 + 1s));
  }
}

TEST_CASE("AcceptGate: failed() logs \"NAME: accept: reason\"", "[listener][accept_gate]") {
  AcceptGate gate;
  CaptureCerr log;
  gate.failed("kvproxy data", EMFILE, AcceptGate::Clock::time_point{1h});
  gate.failed("kvnode", ENOBUFS, AcceptGate::Clock::time_point{2h});
  CHECK(log.text.str() ==
        "kvproxy data: accept: Too many open files\n"
        "kvnode: accept: No buffer space available\n");
}
