// Socket addresses from the project's host:port forms, and back to text, for the code that makes its
// own sockets (kvproxy's data path and its listeners).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

namespace kv::net {

struct Endpoint {
  sockaddr_storage address{};
  socklen_t size = 0;
};

// An IPv4 or IPv6 literal and a port; nullopt for anything else (names are resolved before: the data
// path never waits for DNS).
std::optional<Endpoint> endpoint_of(const std::string& host, std::uint16_t port);
// "ip:port" (or "[v6]:port") as a socket address.
std::optional<Endpoint> endpoint_of(const std::string& resolved);
// "ip:port" (IPv6: "[ip]:port") of a peer, for logs.
std::string peer_text(const sockaddr_storage& a);

}  // namespace kv::net
