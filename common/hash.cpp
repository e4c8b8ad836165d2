#include "common/hash.hpp"

#include <xxhash.h>

#include <string>

namespace kv {

std::uint64_t hash_key(std::string_view key) noexcept {
  return XXH3_64bits_withSeed(key.data(), key.size(), kHashSeed);
}

std::uint64_t hash_point(std::string_view id, std::uint32_t index) noexcept {
  // Node ids are short (config limits them to 64 bytes), so this fits on the stack.
  char buf[64 + 5];
  const std::size_t n = id.size() < 64 ? id.size() : 64;
  for (std::size_t i = 0; i < n; ++i) buf[i] = id[i];
  buf[n] = '\0';
  buf[n + 1] = static_cast<char>(index >> 24);
  buf[n + 2] = static_cast<char>(index >> 16);
  buf[n + 3] = static_cast<char>(index >> 8);
  buf[n + 4] = static_cast<char>(index);
  return XXH3_64bits_withSeed(buf, n + 5, kHashSeed);
}

}  // namespace kv
