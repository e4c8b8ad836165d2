// A fast path for reading the answers kvproxy gets from its nodes. Beast's parser spent about 17% of
// kvproxy's instructions on them (bench/NOTES.md), byte by byte through a general state machine, for
// heads of three fields. This scanner accepts only the common shape of an HTTP/1.0 or 1.1 answer:
// a status from 200 to 599 other than 204 and 304, token field names, printable ASCII values, one
// Content-Length, no Transfer-Encoding, no Upgrade, no Proxy-Connection, no folded lines. It
// declines everything else, and the caller then hands the same bytes to Beast's parser, so what it
// accepts it must read exactly as Beast would (tests/fuzz/fuzz_response_scan.cpp checks that on
// every input it accepts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kv {

struct ScannedResponse {
  // The fields a proxy must not pass on as they are (hop-by-hop, or recomputed), told apart here
  // once so that the caller need not match names again. The rest are `other`.
  enum class Kind : unsigned char { other, content_length, connection, keep_alive, te, trailer };
  struct Field {
    std::string_view name, value;  // value without the whitespace around it
    Kind kind = Kind::other;
  };
  unsigned version = 11;  // 10 or 11
  unsigned status = 0;
  std::string_view reason;
  std::vector<Field> fields;  // in order; reused across scans (no allocation once warm)
  std::size_t head_size = 0;  // bytes up to and including the blank line
  std::uint64_t content_length = 0;
  bool keep_alive = true;  // as Beast's parser::keep_alive() would say
};

enum class ScanResult {
  complete,   // `out` holds the head, as views into the input; the body is the content_length
              // bytes after head_size, which may not all have arrived yet
  need_more,  // so far the shape fits, the head is not complete
  decline,    // not the common shape (or no head within header_limit): give it to Beast
};

// `in` is what has arrived of the answer, from its first byte.
ScanResult scan_response(std::string_view in, std::size_t header_limit, ScannedResponse& out);

}  // namespace kv
