// kvproxy's fast path for node answers (http/scan.hpp) against Beast's parser: whatever
// the scanner accepts, Beast must read the same way (status, version, reason, every field, length,
// keep-alive, body), and where the scanner waits for more, Beast must not have finished the head.
// Declined input goes to Beast in kvproxy, so it needs no check here.
#include <cstdint>

#include "tests/fuzz/scan_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr std::size_t kLimit = 8192;
  constexpr std::size_t kMaxBody = 64 * 1024;  // kFastPathMaxBody in proxy/data_path.cpp
  kv::http::ScannedHead scanned;
  const kv::http::ScanResult result = kv::http::scan_response(in, kLimit, scanned);
  if (result == kv::http::ScanResult::decline) return 0;
  // kvproxy gives larger answers to Beast as well.
  if (result == kv::http::ScanResult::complete && scanned.content_length > kMaxBody) return 0;
  kv::fuzz::check_as_beast_reads<false>(in, kLimit, kMaxBody, result, scanned, [&](const kv::http::RawHead& head) {
    kv::fuzz::check(head.status == scanned.status && head.version == scanned.version && head.reason() == scanned.reason);
  });
  return 0;
}
