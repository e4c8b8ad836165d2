#include "common/version.hpp"

#include <algorithm>
#include <charconv>
#include <random>

#include "common/transfer.hpp"

namespace kv {

std::string format_tag(const Tag& t) {
  if (t.none()) return "0.0";
  return std::to_string(t.counter) + "." + hex64(t.writer);
}

std::optional<Tag> parse_tag(std::string_view s) noexcept {
  const auto dot = s.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == s.size() || s.size() - dot - 1 > 16) return std::nullopt;
  Tag t;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + dot, t.counter);
  if (ec != std::errc() || p != s.data() + dot || t.counter > kMaxTagCounter) return std::nullopt;
  const auto [q, ec2] = std::from_chars(s.data() + dot + 1, s.data() + s.size(), t.writer, 16);
  if (ec2 != std::errc() || q != s.data() + s.size()) return std::nullopt;
  return t;
}

TagMaker::TagMaker(std::uint32_t writer_half) : half_(writer_half) {}

TagMaker::TagMaker() : half_(0) {
  std::random_device rd;
  do half_ = static_cast<std::uint32_t>(rd());
  while (half_ == 0);  // writer 0 is the legacy tag's
}

Tag TagMaker::next(const Tag& newest_seen, std::uint64_t floor) noexcept {
  const std::uint32_t seq = seq_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t counter = std::max(newest_seen.counter + 1, std::min(floor, kMaxTagCounter));
  return {counter, (std::uint64_t{half_} << 32) | seq};
}

namespace version {
std::string version_line(const Tag& t) {
  std::string s;
  s.reserve(40);
  s.append(kField).append(": ").append(format_tag(t)).append("\r\n");
  return s;
}
}  // namespace version

}  // namespace kv
