#include "net/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/config.hpp"

namespace kv::net {

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

std::optional<Endpoint> endpoint_of(const std::string& resolved) {
  const auto hp = parse_host_port(resolved);
  if (!hp) return std::nullopt;
  return endpoint_of(hp->host, hp->port);
}

std::string peer_text(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  bool bracket = false;
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    bracket = true;
  }
  // As HostPort::str() writes it: an IPv6 host in brackets, so that the port can be told apart.
  return bracket ? "[" + std::string(host) + "]:" + std::to_string(port) : std::string(host) + ":" + std::to_string(port);
}

}  // namespace kv::net
