#include "common/anti_entropy.hpp"

#include <algorithm>
#include <cstdint>

#include "common/storage_key.hpp"
#include "common/varint.hpp"
#include "common/version.hpp"

namespace kv::anti_entropy {

void append_u32s(std::string& out, const std::vector<std::uint32_t>& v) {
  out.reserve(out.size() + v.size() * 4);
  for (auto n : v) append_be32(out, n);
}

bool parse_u32s(std::string_view body, std::uint32_t bound, std::size_t max, std::vector<std::uint32_t>& out) {
  out.clear();
  if (body.size() % 4 != 0 || body.size() / 4 > max) return false;
  for (std::size_t i = 0; i < body.size(); i += 4) {
    const std::uint32_t n = read_be32(body.substr(i));
    if (n >= bound || (!out.empty() && n <= out.back())) return false;
    out.push_back(n);
  }
  return true;
}

void append_u64s(std::string& out, const std::vector<std::uint64_t>& v) {
  out.reserve(out.size() + v.size() * 8);
  for (auto n : v) append_be64(out, n);
}

bool parse_u64s(std::string_view body, std::size_t count, std::vector<std::uint64_t>& out) {
  out.clear();
  if (body.size() != count * 8) return false;
  for (std::size_t i = 0; i < body.size(); i += 8) out.push_back(read_be64(body.substr(i)));
  return true;
}

void append_u16s(std::string& out, const std::vector<std::uint16_t>& v) {
  out.reserve(out.size() + v.size() * 2);
  for (auto n : v) append_be16(out, n);
}

bool parse_u16_list(std::string_view body, std::size_t count, std::vector<std::uint16_t>& out) {
  out.clear();
  if (body.size() != count * 2) return false;
  out.reserve(count);
  for (std::size_t i = 0; i < body.size(); i += 2) out.push_back(read_be16(body.substr(i)));
  return true;
}

void append_key(std::string& out, std::string_view key) {
  append_be32(out, static_cast<std::uint32_t>(key.size()));
  out.append(key);
}

bool parse_keys(std::string_view body, std::size_t max, std::vector<std::string_view>& out) {
  out.clear();
  while (!body.empty()) {
    if (body.size() < 4 || out.size() == max) return false;
    const std::uint32_t n = read_be32(body);
    body.remove_prefix(4);
    if (n < kStorageKeyPrefix || n > body.size()) return false;
    out.push_back(body.substr(0, n));
    body.remove_prefix(n);
  }
  return true;
}

namespace {

// splitmix64's finalizer, a bijection in which every input bit moves every output bit.
std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<std::uint64_t> groups_of(const std::vector<std::uint64_t>& buckets, const std::vector<std::uint64_t>& sums) {
  std::vector<std::uint64_t> out(2 * kGroups, 0);
  for (std::uint32_t b = 0; b < kBuckets && b < buckets.size() && b < sums.size(); ++b) {
    // A bijection: distinct hashes of one bucket mix to distinct values.
    out[b / kBucketsPerGroup] ^= mix64(buckets[b] ^ (std::uint64_t{b} * 0x9e3779b97f4a7c15ULL));
    out[kGroups + b / kBucketsPerGroup] += sums[b];
  }
  return out;
}

std::uint32_t short_digest(std::uint64_t version_digest, std::uint64_t salt) noexcept {
  return static_cast<std::uint32_t>(mix64(version_digest ^ salt) >> 32);  // every bit of both moves the result
}

namespace {

// At most 5 bytes, no bits above 32 (common/varint.hpp).
bool read_varint(std::string_view& body, std::uint32_t& v) {
  std::uint64_t x = 0;
  if (!kv::read_varint(body, x, UINT32_MAX)) return false;
  v = static_cast<std::uint32_t>(x);
  return true;
}

}  // namespace

void append_diff_request(std::string& out, std::uint64_t salt, const std::vector<SegmentDigests>& segments,
                         std::size_t digest_bytes) {
  append_be64(out, salt);
  std::uint32_t next = 0;  // the lowest number the next segment may have
  for (const auto& s : segments) {
    append_varint(out, s.segment - next);
    next = s.segment + 1;
    append_varint(out, static_cast<std::uint32_t>(s.digests.size()));
    for (auto d : s.digests) {
      if (digest_bytes == 2) append_be16(out, static_cast<std::uint16_t>(d));
      else append_be32(out, d);
    }
  }
}

bool parse_diff_request(std::string_view body, std::uint64_t& salt, std::vector<SegmentDigests>& out,
                        std::size_t digest_bytes) {
  out.clear();
  if (digest_bytes != 2 && digest_bytes != 4) return false;
  if (body.size() < 8) return false;
  salt = read_be64(body);
  body.remove_prefix(8);
  std::uint64_t next = 0;
  while (!body.empty()) {
    std::uint32_t gap = 0, n = 0;
    if (out.size() == kMaxSegmentsPerRequest || !read_varint(body, gap) || !read_varint(body, n)) return false;
    if (next + gap >= kSegments || n > kMaxKeysPerFetch || body.size() / digest_bytes < n) return false;
    SegmentDigests s;
    s.segment = static_cast<std::uint32_t>(next + gap);
    next = std::uint64_t{s.segment} + 1;
    s.digests.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const auto at = static_cast<std::size_t>(i) * digest_bytes;
      s.digests.push_back(digest_bytes == 2 ? read_be16(body.substr(at)) : read_be32(body.substr(at)));
    }
    body.remove_prefix(digest_bytes * std::size_t{n});
    out.push_back(std::move(s));
  }
  return true;
}

void append_floors(std::string& out, const std::vector<SegmentFloor>& floors) {
  out.reserve(out.size() + floors.size() * 12);
  for (const auto& f : floors) {
    append_be32(out, f.segment);
    append_be64(out, f.floor);
  }
}

bool parse_floors(std::string_view body, std::vector<SegmentFloor>& out) {
  out.clear();
  if (body.size() % 12 != 0 || body.size() / 12 > kSegments) return false;
  for (std::size_t i = 0; i < body.size(); i += 12) {
    const SegmentFloor f{read_be32(body.substr(i)), read_be64(body.substr(i + 4))};
    if (f.segment >= kSegments || (!out.empty() && f.segment <= out.back().segment) || f.floor == 0 || f.floor > kMaxTagCounter)
      return false;
    out.push_back(f);
  }
  return true;
}

std::vector<SegmentFloor> floors_of(const std::vector<std::pair<std::string, Tag>>& tombstones) {
  std::vector<SegmentFloor> out;
  for (const auto& [key, tag] : tombstones) {
    if (key.size() < kStorageKeyPrefix || tag.counter == 0) continue;
    const std::uint32_t s = segment_of(read_be64(key));
    if (out.empty() || out.back().segment != s) out.push_back({s, tag.counter});
    else out.back().floor = std::max(out.back().floor, tag.counter);
  }
  return out;
}

}  // namespace kv::anti_entropy
