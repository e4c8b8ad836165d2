// Reads a node's answer to one request from the bytes its connection received, without I/O. Answers
// of the common shape are read by the strict scanner (http/scan.hpp) and stay where they arrived
// (views into the buffer); anything else (chunked, no length, 1xx before the answer, an answer to
// HEAD, which has no body whatever its Content-Length says, bodies over kScanMaxBody) goes to
// Beast's parser from the answer's first byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/io_buffer.hpp"
#include "http/scan.hpp"

namespace kv::http {

// Node answers with longer heads are refused (by Beast's parser: the scanner declines them).
inline constexpr std::size_t kAnswerHeaderLimit = 64 * 1024;

class ResponseReader {
 public:
  enum class Status {
    more,      // not complete: receive more
    complete,  // head() and body() hold the answer until the buffer is consumed or the next start()
    failed,    // unreadable, or the connection ended first: failure() says how
  };

  ResponseReader();
  ~ResponseReader();

  // A new answer, from its first byte: to a HEAD request or not, with a body of at most `body_limit`.
  void start(bool head_request, std::uint64_t body_limit);
  // Reads on from what `in` holds. `eof`: the node closed its side; `error`: the connection failed
  // (an errno). Either ends the answer: complete if it was (a body up to EOF), else failed.
  Status read(IoBuffer& in, bool eof, int error);

  // The answer's head has been read (its first byte timing, for the access log).
  bool head_seen() const noexcept { return head_seen_; }
  const ScannedHead& head() const noexcept { return head_; }
  std::string_view body() const noexcept { return body_; }
  // Bytes of the buffer the answer took, to consume once done with it (0: Beast's parser took them).
  std::size_t consumed() const noexcept { return consumed_; }
  // Why it failed: "partial message", or Beast's or the system's reason.
  const std::string& failure() const noexcept { return failure_; }

 private:
  struct Fallback;
  Status read_fallback(IoBuffer& in, bool eof, int error);
  void fresh_parser();

  ScannedHead head_;
  std::string_view body_;
  std::size_t consumed_ = 0;
  bool head_request_ = false;
  bool fallback_ = false;
  bool head_seen_ = false;
  std::uint64_t body_limit_ = 0;
  std::size_t head_used_ = 0;  // head bytes Beast's parser took (it checks only each put on its own)
  std::string failure_;
  std::unique_ptr<Fallback> fb_;  // made on first need, kept for the reader's life
};

}  // namespace kv::http
