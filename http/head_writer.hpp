// Writing HTTP/1 heads into a string, for every listener: status lines, Content-Length, how the
// connection goes on, the answers a server makes itself, and the fields a proxy relays (hop-by-hop
// ones left out). Appends only: the caller owns the string and reuses it, so nothing here allocates
// once it is warm.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/rejection.hpp"
#include "http/scan.hpp"

namespace kv::http {

// The small pieces are inline: every relayed answer takes one or two of them, and a call across
// translation units costs more than their work.
inline void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}
// "HTTP/1.1 200 OK\r\n"; an empty `reason` takes the standard one.
void append_status_line(std::string& out, unsigned version, unsigned status, std::string_view reason = {});
inline void append_content_length(std::string& out, std::uint64_t n) {
  out.append(std::string_view("Content-Length: "));
  append_number(out, n);
  out.append(std::string_view("\r\n"));
}
// Ends a head: how the connection goes on (Connection: close, or keep-alive for HTTP/1.0), then
// the blank line.
inline void end_head(std::string& out, unsigned version, bool keep_alive) {
  if (!keep_alive) out.append(std::string_view("Connection: close\r\n"));
  else if (version == 10) out.append(std::string_view("Connection: keep-alive\r\n"));
  out.append(std::string_view("\r\n"));
}

// An answer the server makes itself: status line, Content-Type, Content-Length, `extra_fields`
// (whole lines, CRLF included), the end of the head, then `body` unless `head_only` (an answer to
// HEAD keeps the length of the body it leaves out).
struct LocalAnswer {
  unsigned status = 200;
  std::string_view content_type = "application/json";
  std::string_view body;
  std::string_view extra_fields;
};
void append_answer(std::string& out, unsigned version, const LocalAnswer& a, bool keep_alive, bool head_only);

// The answer to a refused request, the same bytes on every listener: a JSON error with
// Connection: close (the connection then lingers and closes: limits.hpp).
void append_rejection(std::string& out, unsigned version, const Rejection& r);

// Appends `start_line` (if any) and the fields of `h` that go to the next hop. Lines that lie back
// to back where they came are copied in one piece; the fields of a head Beast read are formatted one
// by one. Left out: hop-by-hop fields (RFC 9110 7.6.1) and those Connection names, Expect on a
// request (the proxy answered it), the fields whose names begin with `drop_prefix_lower` (compared
// case-insensitively; empty: none), which are the proxy's own to set, and a
// Content-Length that did not come as a line of its own (Beast's heads: the body may have been
// chunked). Returns whether a Content-Length went out: the body then goes on as it came.
bool append_relayed(const ScannedHead& h, std::string_view start_line, std::string& out, bool request,
                    std::string_view drop_prefix_lower);

// A request as a proxy passes it on: HTTP/1.1 and keep-alive whatever the client spoke, its
// end-to-end fields as they came (append_relayed), `extra_fields` (whole lines), and the whole `body`
// with its length: the proxy has read the body and answered any "Expect: 100-continue" itself.
void append_relayed_request(std::string& out, const ScannedHead& req, std::string_view body,
                            std::string_view drop_prefix_lower, std::string_view extra_fields);
// An answer as a proxy passes it on to the client that sent `req`: the node's status line where the
// versions match (else one in the client's version), its end-to-end fields, `extra_fields`, its
// length (an answer to HEAD keeps the node's Content-Length and leaves the body out), how the
// connection goes on, then `body`.
void append_relayed_answer(std::string& out, const ScannedHead& req, const ScannedHead& ans, std::string_view body,
                           std::string_view drop_prefix_lower, std::string_view extra_fields, bool keep_alive);

}  // namespace kv::http
