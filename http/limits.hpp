// The server policy every kvring listener applies, written once: kvproxy's data path (net/io_loop),
// and the Asio frame (net/server) that serves kvnode and kvproxy's admin port. What a client is held
// to (deadlines, sizes) and how the server behaves around it (lingering after a refusal, how often
// deadlines are looked at, how long accepting pauses after a failed accept).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace kv::http {

struct ServerLimits {
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive: waiting for a request's first byte
  std::chrono::milliseconds header_timeout{10'000};  // first byte to end of headers
  std::chrono::milliseconds body_timeout{30'000};    // reading the body
  std::chrono::milliseconds write_timeout{30'000};   // writing a response
  std::uint32_t header_limit = 8192;                 // request line + headers (431 above)
  std::uint64_t body_limit = 1 << 20;                // body (413 above)
  // When above body_limit: the body limit for targets under /admin/ (kvnode's bulk transfers).
  std::uint64_t admin_body_limit = 0;
};

// After refusing a request (4xx with Connection: close): the answer is sent, the sending side shut,
// then what the client still sends is read and dropped for up to kLingerTimeout between reads and
// kLingerBytes in all, so that it reads the answer rather than a reset.
inline constexpr std::chrono::seconds kLingerTimeout{1};
inline constexpr std::size_t kLingerBytes = 8u << 20;
// Deadlines are looked at this often, so they hold to within this much.
inline constexpr std::chrono::milliseconds kSweepInterval{50};
// accept() failed for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS...): accepting pauses
// this long instead of spinning; the kernel's backlog holds the clients meanwhile.
inline constexpr std::chrono::milliseconds kAcceptBackoff{50};

}  // namespace kv::http
