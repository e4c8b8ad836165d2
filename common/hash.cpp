#include "common/hash.hpp"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack (hash_version)
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

namespace kv {

std::uint64_t hash_version(std::string_view stored_key, char kind, std::uint64_t counter, std::uint64_t writer) noexcept {
  XXH3_state_t state;
  XXH3_64bits_reset_withSeed(&state, kHashSeed);
  XXH3_64bits_update(&state, stored_key.data(), stored_key.size());
  unsigned char tail[17];
  tail[0] = static_cast<unsigned char>(kind);
  for (int i = 0; i < 8; ++i) {
    tail[1 + i] = static_cast<unsigned char>(counter >> (56 - 8 * i));
    tail[9 + i] = static_cast<unsigned char>(writer >> (56 - 8 * i));
  }
  XXH3_64bits_update(&state, tail, sizeof tail);
  return XXH3_64bits_digest(&state);
}

}  // namespace kv
