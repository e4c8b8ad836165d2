// kvproxy's fast path for node answers (common/http_scan.hpp) against Beast's parser: whatever
// the scanner accepts, Beast must read the same way (status, version, reason, every field, length,
// keep-alive, body), and where the scanner waits for more, Beast must not have finished the head.
// Declined input goes to Beast in kvproxy, so it needs no check here.
#include <boost/beast/core/buffer_traits.hpp>

#include <cstdint>
#include <string>

#include "scan_check.hpp"

namespace http = boost::beast::http;
using kv::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr std::size_t kLimit = 8192;
  kv::ScannedHead scanned;
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
  kv::fuzz::check_fields(head, scanned);
  check(parser.content_length() && *parser.content_length() == scanned.content_length);
  check(parser.keep_alive() == scanned.keep_alive);
  const std::size_t total = scanned.head_size + static_cast<std::size_t>(scanned.content_length);
  if (in.size() >= total) {
    check(parser.is_done() && used == total);
    check(body == in.substr(scanned.head_size, static_cast<std::size_t>(scanned.content_length)));
  }
  return 0;
}
