// How a key is stored on a node: 8 bytes of its ring hash, big-endian, then the key bytes.
// Byte order then follows ring order, so any arc (start, end] of the ring is one contiguous range of
// stored keys: the rebalancer scans and moves arcs as ranges.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/hash.hpp"

namespace kv {

inline constexpr std::size_t kStorageKeyPrefix = 8;

inline void append_be64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

inline std::uint64_t read_be64(std::string_view in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

// The 2-byte big-endian short digests of anti_entropy.hpp.
inline void append_be16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

inline std::uint16_t read_be16(std::string_view in) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(in[0]) << 8 | static_cast<unsigned char>(in[1]));
}

// The 4-byte big-endian lengths and numbers of the wire formats (transfer.hpp, anti_entropy.hpp).
inline void append_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

inline std::uint32_t read_be32(std::string_view in) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

inline std::string storage_key(std::string_view key, std::uint64_t hash) {
  std::string out;
  out.reserve(kStorageKeyPrefix + key.size());
  append_be64(out, hash);
  out.append(key);
  return out;
}

inline std::string storage_key(std::string_view key) { return storage_key(key, hash_key(key)); }

// The user key inside a stored key.
inline std::string_view user_key(std::string_view stored) { return stored.substr(kStorageKeyPrefix); }

}  // namespace kv
