// Key parsing (common/key.*): extract_key, percent_decode, target_path, query_value on any target.
// Checks the contract, not just the absence of crashes: an accepted key is non-empty, within the
// limit and free of control bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/key.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  const auto r = kv::extract_key(target, 64);
  if (r.error == kv::KeyError::none) {
    if (r.key.empty() || r.key.size() > 64) std::abort();
    for (unsigned char c : r.key)
      if (c < 0x20 || c == 0x7f) std::abort();
  } else if (kv::key_error_detail(r.error).empty()) {
    std::abort();
  }
  std::string decoded;
  kv::percent_decode(target, decoded);
  const auto path = kv::target_path(target);
  if (path.size() > target.size()) std::abort();
  (void)kv::query_value(target, "after");
  return 0;
}
