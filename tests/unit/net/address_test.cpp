// net/address.hpp: socket addresses from IP literals and "ip:port" / "[v6]:port", names refused (the
// data path never waits for DNS), and a peer's address back to text for the access log.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "net/address.hpp"

using namespace kv::net;

namespace {

const sockaddr_in& v4(const Endpoint& e) { return *reinterpret_cast<const sockaddr_in*>(&e.address); }
const sockaddr_in6& v6(const Endpoint& e) { return *reinterpret_cast<const sockaddr_in6*>(&e.address); }

// The IPv4 address of `e` as text, e.g. "10.1.2.3".
std::string text4(const Endpoint& e) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &v4(e).sin_addr, buf, sizeof buf);
  return buf;
}

std::string text6(const Endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, &v6(e).sin6_addr, buf, sizeof buf);
  return buf;
}

sockaddr_storage storage4(const char* ip, std::uint16_t port) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in*>(&s);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  REQUIRE(::inet_pton(AF_INET, ip, &a->sin_addr) == 1);
  return s;
}

sockaddr_storage storage6(const char* ip, std::uint16_t port) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in6*>(&s);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  REQUIRE(::inet_pton(AF_INET6, ip, &a->sin6_addr) == 1);
  return s;
}

}  // namespace

TEST_CASE("endpoint_of: an IPv4 literal and a port", "[address]") {
  const auto e = endpoint_of("10.1.2.3", 9001);
  REQUIRE(e);
  CHECK(e->address.ss_family == AF_INET);
  CHECK(e->size == sizeof(sockaddr_in));
  CHECK(ntohs(v4(*e).sin_port) == 9001);
  CHECK(text4(*e) == "10.1.2.3");
  CHECK(ntohl(v4(*e).sin_addr.s_addr) == 0x0a010203u);
}

TEST_CASE("endpoint_of: an IPv6 literal and a port", "[address]") {
  SECTION("loopback") {
    const auto e = endpoint_of("::1", 443);
    REQUIRE(e);
    CHECK(e->address.ss_family == AF_INET6);
    CHECK(e->size == sizeof(sockaddr_in6));
    CHECK(ntohs(v6(*e).sin6_port) == 443);
    CHECK(std::memcmp(&v6(*e).sin6_addr, &in6addr_loopback, sizeof(in6_addr)) == 0);
  }
  SECTION("a full address, written in capitals, comes back in the canonical form") {
    const auto e = endpoint_of("2001:DB8:0:0:0:0:0:7", 65535);
    REQUIRE(e);
    CHECK(e->address.ss_family == AF_INET6);
    CHECK(ntohs(v6(*e).sin6_port) == 65535);
    CHECK(text6(*e) == "2001:db8::7");
  }
  SECTION("an IPv4-mapped address is IPv6") {
    const auto e = endpoint_of("::ffff:10.0.0.1", 1);
    REQUIRE(e);
    CHECK(e->address.ss_family == AF_INET6);
    CHECK(text6(*e) == "::ffff:10.0.0.1");
  }
}

TEST_CASE("endpoint_of: names and anything else that is not an IP literal are refused", "[address]") {
  for (const char* host : {"localhost", "example.com", "node-1", "", "[::1]", "127.0.0.1 ", " 127.0.0.1", "127.0.0.256",
                           "1.2.3", "::1%lo", "::g"}) {
    INFO("host '" << host << "'");
    CHECK_FALSE(endpoint_of(host, 80));
  }
}

TEST_CASE("endpoint_of: \"ip:port\" and \"[v6]:port\"", "[address]") {
  SECTION("IPv4") {
    const auto e = endpoint_of("127.0.0.1:8081");
    REQUIRE(e);
    CHECK(e->address.ss_family == AF_INET);
    CHECK(e->size == sizeof(sockaddr_in));
    CHECK(text4(*e) == "127.0.0.1");
    CHECK(ntohs(v4(*e).sin_port) == 8081);
  }
  SECTION("IPv6 in brackets") {
    const auto e = endpoint_of("[fe80::1:2]:9000");
    REQUIRE(e);
    CHECK(e->address.ss_family == AF_INET6);
    CHECK(e->size == sizeof(sockaddr_in6));
    CHECK(text6(*e) == "fe80::1:2");
    CHECK(ntohs(v6(*e).sin6_port) == 9000);
  }
  SECTION("refused") {
    for (const char* s : {"localhost:80", "example.com:443",  // names: resolved before, never here
                          "::1:9000",                          // bare IPv6 needs brackets
                          "[::1]", "[::1]:", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:80x", "[127.0.0.1]:80", ""}) {
      INFO("'" << s << "'");
      CHECK_FALSE(endpoint_of(std::string(s)));
    }
  }
}

TEST_CASE("peer_text: an IPv4 peer as ip:port", "[address]") {
  CHECK(peer_text(storage4("10.0.0.7", 51234)) == "10.0.0.7:51234");
  CHECK(peer_text(storage4("255.255.255.255", 65535)) == "255.255.255.255:65535");
  CHECK(peer_text(storage4("0.0.0.0", 0)) == "0.0.0.0:0");
}

TEST_CASE("peer_text: an address of another family is \"?:0\"", "[address]") {
  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  CHECK(peer_text(unix_peer) == "?:0");
  CHECK(peer_text(sockaddr_storage{}) == "?:0");
}

TEST_CASE("peer_text and endpoint_of agree on IPv4", "[address]") {
  const auto e = endpoint_of(peer_text(storage4("192.168.1.20", 40000)));
  REQUIRE(e);
  CHECK(text4(*e) == "192.168.1.20");
  CHECK(ntohs(v4(*e).sin_port) == 40000);
}

// The project writes an IPv6 host and port as "[v6]:port" (HostPort::str, endpoint_of above, the
// node addresses in the stats); peer_text writes "::1:51234", which is itself a valid IPv6 address
// (::1:51234, no port), so the access log's client field cannot be read back.
TEST_CASE("peer_text: an IPv6 peer as [ip]:port", "[address]") {
  CHECK(peer_text(storage6("::1", 51234)) == "[::1]:51234");
  CHECK(peer_text(storage6("2001:db8::7", 443)) == "[2001:db8::7]:443");
  const auto e = endpoint_of(peer_text(storage6("2001:db8::7", 443)));
  CHECK(e.has_value());
}
