// kvproxy's fast path for reading HTTP/1.x heads: the requests of its clients and the answers of its
// nodes. Beast's parser reads byte by byte through a general state machine and spent a fifth of
// kvproxy's instructions (bench/NOTES.md) on heads of two or three fields. These scanners accept only
// the common shape of a message and decline everything else; the caller then hands the same bytes
// to Beast's parser, which reads it from its first byte and gives any error its exact name. So what
// a scanner accepts it must read exactly as Beast would: tests/fuzz/fuzz_request_scan.cpp and
// fuzz_response_scan.cpp check that on every input they accept.
//
// The common shape, both ways: HTTP/1.0 or 1.1, token field names, printable ASCII values, at most
// one Content-Length, no Transfer-Encoding, Upgrade or Proxy-Connection, no folded lines, at most
// 256 fields. Requests: GET, HEAD, POST, PUT or DELETE, an origin-form target of printable ASCII,
// no Expect (the caller answers 100-continue through Beast's path). Answers: a status from 200 to
// 599 other than 204 and 304, and a Content-Length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kv::http {

enum class Method : unsigned char { other, get, head, post, put, delete_ };

struct ScannedHead {
  // The fields a proxy must not pass on as they are (hop-by-hop, recomputed, or answered by the
  // proxy itself), told apart once so that the caller need not match names again. The scanners
  // decline messages with the last four but an Expect in an answer; a head Beast read
  // (http/parser.hpp) has them all.
  enum class Kind : unsigned char {
    other, content_length, connection, keep_alive, te, trailer,
    transfer_encoding, upgrade, proxy_connection, expect,
  };
  struct Field {
    std::string_view name, value;  // value without the whitespace around it
    Kind kind = Kind::other;
    std::string_view line;  // the whole line as it came, CRLF included (empty in a head Beast read)
  };
  unsigned version = 11;  // 10 or 11
  std::string_view start_line;  // as it came, CRLF included (empty in a head Beast read)
  // Requests
  Method method = Method::other;
  std::string_view method_string, target;
  // Answers
  unsigned status = 0;
  std::string_view reason;

  std::vector<Field> fields;  // in order; reused across scans (no allocation once warm)
  std::size_t head_size = 0;  // bytes up to and including the blank line
  std::uint64_t content_length = 0;  // 0 for a request without one
  bool keep_alive = true;  // as Beast's parser::keep_alive() would say
  // Connection names a field other than close and keep-alive: that field is hop-by-hop too.
  bool connection_names_fields = false;
};

// Messages with larger bodies go to Beast's parser, which moves the body out of the connection's
// buffer as it arrives; the scanners' path holds a whole message in the buffer.
inline constexpr std::uint64_t kScanMaxBody = 64 * 1024;

enum class ScanResult {
  complete,   // `out` holds the head, as views into the input; the body is the content_length
              // bytes after head_size, which may not all have arrived yet
  need_more,  // so far the shape fits, the head is not complete
  decline,    // not the common shape (or no head within header_limit): give it to Beast
};

// `in` is what has arrived of the message, from its first byte.
ScanResult scan_request(std::string_view in, std::size_t header_limit, ScannedHead& out);
ScanResult scan_response(std::string_view in, std::size_t header_limit, ScannedHead& out);

// Case-insensitive comparison with a lower-case ASCII name.
bool iequal_lower(std::string_view a, std::string_view lower) noexcept;

}  // namespace kv::http
