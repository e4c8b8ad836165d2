// Reads a client's requests, one after another, from the bytes a connection received, without I/O:
// the caller receives into an IoBuffer and calls read() until a request is complete or refused (a
// client that goes away mid-request is the caller's to see: the reader only sees bytes). Heads of
// the common shape are read by the strict scanner (http/scan.hpp) and stay where they arrived
// (views into the buffer, which the caller must not touch until the request is done); anything the
// scanner declines, and bodies over kScanMaxBody, go to Beast's parser from the request's first
// byte, which takes the bytes out of the buffer as it reads them and gives any error its exact name.
//
// The caller owns the deadlines: header_timeout from the first byte until head_done(), body_timeout
// after. It sends "HTTP/1.1 100 Continue" when take_continue() says so, and the rejection when a
// request is refused (append_rejection in head_writer.hpp), then closes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/io_buffer.hpp"
#include "http/limits.hpp"
#include "http/rejection.hpp"
#include "http/scan.hpp"

namespace kv::http {

// What a client that waits for it before sending its body gets.
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

class RequestReader {
 public:
  enum class Status {
    more,      // the request is not complete: receive more into the buffer
    complete,  // head() and body() hold the request until reset()
    rejected,  // refused: answer rejection(), then close
  };

  // `limits` must outlive the reader: header_limit and body_limit apply.
  explicit RequestReader(const ServerLimits& limits);
  ~RequestReader();

  // Reads on from what `in` holds, which starts at the request's first byte.
  Status read(IoBuffer& in);

  bool head_done() const noexcept { return head_done_; }
  // The request's version once it is known (Beast's path: its request line; the scanner's: its whole
  // head), 11 before: a refusal answers in it.
  unsigned version() const noexcept { return version_; }
  // True once per request, when the head asked for "100-continue" and the body has not come.
  bool take_continue() noexcept;

  const ScannedHead& head() const noexcept { return head_; }
  std::string_view body() const noexcept { return body_; }
  // How many bytes of the buffer the request took: the caller consumes them once it is done with
  // head() and body() (0 when Beast's parser read it: it took the bytes as it went).
  std::size_t consumed() const noexcept { return consumed_; }
  const Rejection& rejection() const noexcept { return rejection_; }

  // A deadline passed before the request was complete: the refusal to send (408).
  const Rejection& timed_out();
  // The request is done with: the next read() starts a new one.
  void reset() noexcept;

 private:
  struct Fallback;
  Status read_fallback(IoBuffer& in);

  const ServerLimits& limits_;
  ScannedHead head_;
  std::string_view body_;
  std::size_t consumed_ = 0;
  bool head_done_ = false;
  bool fallback_ = false;         // Beast's parser is reading this request
  bool continue_due_ = false;
  bool continue_given_ = false;
  unsigned version_ = 11;
  std::size_t head_used_ = 0;  // head bytes Beast's parser took (it checks only each put on its own)
  Rejection rejection_;
  std::unique_ptr<Fallback> fb_;  // made on first need, kept for the connection's life
};

}  // namespace kv::http
