// kvproxy's fast path for node answers (common/response_scan.hpp) against Beast's parser: whatever
// the scanner accepts, Beast must read the same way (status, version, reason, every field, length,
// keep-alive, body), and where the scanner waits for more, Beast must not have finished the head.
// Declined input goes to Beast in kvproxy, so it needs no check here.
#include <boost/beast/core/buffer_traits.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "raw_http.hpp"
#include "response_scan.hpp"

namespace http = boost::beast::http;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr std::size_t kLimit = 8192;
  kv::ScannedResponse scanned;
  const kv::ScanResult result = kv::scan_response(in, kLimit, scanned);
  if (result == kv::ScanResult::decline) return 0;
  // kvproxy gives answers over 64 KiB to Beast as well (kFastPathMaxBody in proxy/data_path.cpp).
  if (result == kv::ScanResult::complete && scanned.content_length > 64 * 1024) return 0;

  kv::net::RawHead head;
  std::string body;
  kv::net::RawParser<false> parser(head, body);
  parser.header_limit(kLimit);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  const std::size_t used = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
  if (result == kv::ScanResult::need_more) {
    check(!parser.is_header_done());
    return 0;
  }
  // complete
  check(!ec || ec == http::error::need_more);
  check(parser.is_header_done());
  check(head.status == scanned.status && head.version == scanned.version && head.reason() == scanned.reason);
  check(head.fields.size() == scanned.fields.size());
  using Kind = kv::ScannedResponse::Kind;
  for (std::size_t i = 0; i < head.fields.size(); ++i) {
    check(head.name(head.fields[i]) == scanned.fields[i].name && head.value(head.fields[i]) == scanned.fields[i].value);
    // The kinds kvproxy maps to Beast's ids, against the ids Beast gives.
    const http::field id = head.fields[i].id;
    const Kind kind = scanned.fields[i].kind;
    check((kind == Kind::content_length) == (id == http::field::content_length));
    check((kind == Kind::connection) == (id == http::field::connection));
    check((kind == Kind::keep_alive) == (id == http::field::keep_alive));
    check((kind == Kind::te) == (id == http::field::te));
    check((kind == Kind::trailer) == (id == http::field::trailer));
  }
  check(parser.content_length() && *parser.content_length() == scanned.content_length);
  check(parser.keep_alive() == scanned.keep_alive);
  const std::size_t total = scanned.head_size + static_cast<std::size_t>(scanned.content_length);
  if (in.size() >= total) {
    check(parser.is_done() && used == total);
    check(body == in.substr(scanned.head_size, static_cast<std::size_t>(scanned.content_length)));
  }
  return 0;
}
