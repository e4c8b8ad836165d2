// Hashing for kvring: XXH3 64-bit with one fixed seed, for keys and for ring points alike.
// Changing the seed or the point encoding changes every placement: it is part of the on-disk and
// on-the-wire contract (stored keys are prefixed by their hash, proxies must agree on owners).
#pragma once

#include <cstdint>
#include <string_view>

namespace kv {

inline constexpr std::uint64_t kHashSeed = 0x6b7672696e672131ULL;  // "kvring!1"

std::uint64_t hash_key(std::string_view key) noexcept;

// The hash of ring point `index` of the node with stable identity `id`:
// XXH3(id bytes, 0x00, index as 4 big-endian bytes).
std::uint64_t hash_point(std::string_view id, std::uint32_t index) noexcept;

// The digest of one version a key holds, for anti-entropy's hash trees (common/anti_entropy.hpp):
// XXH3(stored key, kind byte, counter and writer as 8 big-endian bytes each). Never 0 in practice.
std::uint64_t hash_version(std::string_view stored_key, char kind, std::uint64_t counter, std::uint64_t writer) noexcept;

}  // namespace kv
