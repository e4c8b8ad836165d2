// kvnode's HTTP/1.1 server: one acceptor, N worker threads each with its own io_context; accepted
// connections are handed to workers round-robin. One coroutine per connection owns its stream,
// buffer and parser; requests on a connection (pipelined or not) are answered in order.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "api.hpp"
#include "config.hpp"

namespace kv {

struct ServerOptions {
  HostPort bind{"127.0.0.1", 8081};
  unsigned threads = 1;
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive: waiting for a request's first byte
  std::chrono::milliseconds header_timeout{10'000};  // first byte to end of headers
  std::chrono::milliseconds body_timeout{30'000};    // reading the body
  std::chrono::milliseconds write_timeout{30'000};   // writing a response
  std::chrono::milliseconds shutdown_timeout{10'000};  // SIGTERM: longest wait for in-flight requests
  std::uint32_t header_limit = 8192;                 // bytes of request line + headers (431 above)
  std::uint64_t body_limit = 0;                      // bytes of body (413 above)
};

class Server {
 public:
  Server(ServerOptions options, Api& api, NodeMetrics& metrics);
  ~Server();

  // Binds the listening socket; throws std::runtime_error "cannot listen on H:P: reason". Returns the port.
  std::uint16_t listen();
  // Serves until SIGTERM/SIGINT (or stop()), then drains and returns. The signals stay caught (and
  // ignored) until the Server is destroyed, so the caller can flush storage safely after run().
  void run();
  // Thread-safe: stop accepting, finish in-flight requests, close idle connections.
  void stop();

 private:
  void wait_for_signal();

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kv
