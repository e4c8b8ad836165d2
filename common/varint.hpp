// LEB128 varints for the binary wire formats (common/anti_entropy.hpp's diff requests, transfer.hpp's
// compact records): 7 bits a byte, low first, the high bit set on every byte but the last.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv {

inline void append_varint(std::string& out, std::uint64_t v) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>(v | 0x80));
  out.push_back(static_cast<char>(v));
}

// One number at the front of `body`, consumed. False (and `body` untouched) when it is cut short,
// above `max`, or longer than needed (one number, one encoding).
inline bool read_varint(std::string_view& body, std::uint64_t& v, std::uint64_t max = UINT64_MAX) {
  std::uint64_t x = 0;
  for (unsigned i = 0; i < 10 && i < body.size(); ++i) {
    const auto b = static_cast<unsigned char>(body[i]);
    if (i == 9 && b > 1) return false;  // bits above 64
    x |= std::uint64_t{b & 0x7fu} << (7 * i);
    if (b & 0x80) continue;
    if ((i > 0 && b == 0) || x > max) return false;
    v = x;
    body.remove_prefix(i + 1);
    return true;
  }
  return false;
}

}  // namespace kv
