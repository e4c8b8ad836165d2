#include "net/listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <stdexcept>
#include <system_error>

#include "http/limits.hpp"
#include "net/address.hpp"

namespace kv::net {

Listening open_listener(const HostPort& address) {
  const auto ep = endpoint_of(address.host, address.port);
  if (!ep) throw std::runtime_error("cannot listen on " + address.str() + ": not an IP address");
  const int fd = ::socket(ep->address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  auto fail = [&](int e) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot listen on " + address.str() + ": " + std::system_category().message(e));
  };
  if (fd < 0) fail(errno);
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) fail(errno);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ep->address), ep->size) != 0) fail(errno);
  if (::listen(fd, SOMAXCONN) != 0) fail(errno);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const std::uint16_t port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                                         : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return {fd, port, bound.ss_family};
}

AcceptGate::Clock::time_point AcceptGate::failed(std::string_view name, int error, Clock::time_point now) {
  std::cerr << name << ": accept: " << std::system_category().message(error) << std::endl;
  const auto until = now + http::kAcceptBackoff;
  pause_until_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
  return until;
}

}  // namespace kv::net
