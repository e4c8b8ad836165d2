// What fuzz_request_scan and fuzz_response_scan check alike: that a head kvproxy's scanner accepted
// is read by Beast's parser the same way (every field, with the kinds kvproxy acts on matching
// Beast's field ids; the length, keep-alive and body), and that where the scanner waits for more,
// Beast has not finished the head either.
#pragma once

#include <boost/beast/core/buffer_traits.hpp>

#include <cstdlib>
#include <string>
#include <string_view>

#include "http/scan.hpp"
#include "http/parser.hpp"

namespace kv::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

inline void check_fields(const http::RawHead& head, const http::ScannedHead& scanned) {
  check(head.fields.size() == scanned.fields.size());
  for (std::size_t i = 0; i < head.fields.size(); ++i) {
    check(head.name(head.fields[i]) == scanned.fields[i].name && head.value(head.fields[i]) == scanned.fields[i].value);
    // The scanners decline the fields of the other kinds: what they accept, Beast knows the same way.
    check(scanned.fields[i].kind == http::kind_of(head.fields[i].id));
  }
}

// Parses `in` with Beast as kvproxy's fallback would (head limit `head_limit`, bodies up to
// `body_limit`) and checks it against what the scanner made of it (`result`, `scanned`; not a
// decline). `start_line(head)` checks the request or status line. Answers always carry a
// Content-Length when the scanner accepts them; requests may go without (no body).
template <bool isRequest, class StartLine>
void check_as_beast_reads(std::string_view in, std::size_t head_limit, std::size_t body_limit, http::ScanResult result,
                          const http::ScannedHead& scanned, StartLine&& start_line) {
  http::RawHead head;
  std::string body;
  http::RawParser<isRequest> parser(head, body);
  parser.header_limit(static_cast<std::uint32_t>(head_limit));
  parser.body_limit(body_limit);
  parser.eager(true);
  boost::beast::error_code ec;
  const std::size_t used = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
  if (result == http::ScanResult::need_more) {
    check(!parser.is_header_done());
    return;
  }
  check(!ec || ec == boost::beast::http::error::need_more);
  check(parser.is_header_done());
  start_line(head);
  check_fields(head, scanned);
  check(isRequest ? parser.content_length().value_or(0) == scanned.content_length
                  : parser.content_length() && *parser.content_length() == scanned.content_length);
  check(parser.keep_alive() == scanned.keep_alive);
  const std::size_t total = scanned.head_size + static_cast<std::size_t>(scanned.content_length);
  if (in.size() >= total) {
    check(parser.is_done() && used == total);
    check(body == in.substr(scanned.head_size, static_cast<std::size_t>(scanned.content_length)));
  } else {
    check(!parser.is_done());
  }
}

}  // namespace kv::fuzz
