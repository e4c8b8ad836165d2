// The rebalancer's wire formats (common/transfer.*), which kvnode parses from request bodies:
// range lists and records; and anti-entropy's diff request and compact records (common/anti_entropy.*,
// common/transfer.*). What parses re-encodes to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/anti_entropy.hpp"
#include "common/transfer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string error;
  std::vector<kv::Record> records;
  if (kv::parse_records(body, records, error)) {
    std::string again;
    for (const auto& r : records) kv::append_record(again, r.key, r.value);
    if (again != body) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  std::vector<kv::HashRange> ranges;
  if (kv::parse_ranges(body, ranges, error)) {
    for (std::size_t i = 0; i < ranges.size(); ++i)
      if (ranges[i].lo > ranges[i].hi || (i > 0 && ranges[i].lo <= ranges[i - 1].hi)) std::abort();
  }
  std::string keys;
  if (kv::parse_compact_records(body, records, keys, error)) {
    std::string again;
    for (const auto& r : records) kv::append_compact_record(again, r);
    if (again != body) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  std::uint64_t salt = 0;
  std::vector<kv::anti_entropy::SegmentDigests> asked;
  for (const std::size_t width : {4, 2}) {
    if (kv::anti_entropy::parse_diff_request(body, salt, asked, width)) {
      std::string again;
      kv::anti_entropy::append_diff_request(again, salt, asked, width);
      if (again != body) std::abort();
    }
  }
  std::string bytes;
  if (kv::parse_hex_bytes(body, bytes) && kv::hex_bytes(bytes).size() != body.size()) std::abort();
  return 0;
}
