// ring.yaml parsing and validation (common/config.*), and for small valid rings the ring itself:
// exact ownership sums to the whole space, the fingerprint is stable across the proxy's rewrite
// (with_membership), and moved_ranges between the ring and itself is empty.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/config.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kv::RingConfig config;
  try {
    config = kv::parse_ring_config(text, "fuzz.yaml");
  } catch (const kv::ConfigError&) {
    return 0;  // refused with a message: fine
  }
  std::uint64_t points = 0;
  for (const auto& n : config.nodes) points += std::uint64_t{n.weight} * config.vnodes;
  if (points > 200'000) return 0;  // valid, but too slow to build on every input
  const auto ring = kv::Ring::build(config);
  kv::uint128 total = 0;
  for (auto v : ring->ownership_exact()) total += v;
  if (total != (static_cast<kv::uint128>(1) << 64)) std::abort();
  if (!kv::moved_ranges(*ring, *ring).empty()) std::abort();
  const auto again = kv::parse_ring_config(kv::with_membership(text, text, "fuzz.yaml"), "fuzz.yaml");
  if (kv::ring_fingerprint(again) != kv::ring_fingerprint(config)) std::abort();
  return 0;
}
