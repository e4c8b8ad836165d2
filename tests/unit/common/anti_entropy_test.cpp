// The anti-entropy wire formats (common/anti_entropy.hpp): numbers and keys in, the same out, and
// every malformed body refused.
#include <catch2/catch.hpp>

#include "common/anti_entropy.hpp"
#include "common/storage_key.hpp"

namespace ae = kv::anti_entropy;

TEST_CASE("anti-entropy: segments cover the hash space in order, one contiguous range each", "[anti_entropy]") {
  CHECK(ae::segment_of(0) == 0);
  CHECK(ae::segment_of(~std::uint64_t{0}) == ae::kSegments - 1);
  for (std::uint32_t s : {0u, 1u, 777u, ae::kSegments - 1}) {
    const auto r = ae::segment_range(s);
    CHECK(ae::segment_of(r.lo) == s);
    CHECK(ae::segment_of(r.hi) == s);
    if (s + 1 < ae::kSegments) CHECK(ae::segment_range(s + 1).lo == r.hi + 1);
  }
  CHECK(ae::kBuckets * ae::kFanout == ae::kSegments);
}

TEST_CASE("anti-entropy: bucket and segment lists must ascend and stay in bounds", "[anti_entropy]") {
  std::string body;
  ae::append_u32s(body, {0, 5, 1023});
  std::vector<std::uint32_t> out;
  REQUIRE(ae::parse_u32s(body, 1024, 10, out));
  CHECK(out == std::vector<std::uint32_t>{0, 5, 1023});
  CHECK_FALSE(ae::parse_u32s(body, 1023, 10, out));  // 1023 out of bounds
  CHECK_FALSE(ae::parse_u32s(body, 1024, 2, out));   // too many
  CHECK_FALSE(ae::parse_u32s(body.substr(1), 1024, 10, out));  // not whole numbers
  std::string down;
  ae::append_u32s(down, {5, 5});
  CHECK_FALSE(ae::parse_u32s(down, 1024, 10, out));  // not ascending
  CHECK(ae::parse_u32s("", 1024, 10, out));
  CHECK(out.empty());
}

TEST_CASE("anti-entropy: hash lists have exactly the count asked", "[anti_entropy]") {
  std::string body;
  ae::append_u64s(body, {1, ~std::uint64_t{0}, 0x0102030405060708});
  std::vector<std::uint64_t> out;
  REQUIRE(ae::parse_u64s(body, 3, out));
  CHECK(out[1] == ~std::uint64_t{0});
  CHECK(out[2] == 0x0102030405060708);
  CHECK_FALSE(ae::parse_u64s(body, 2, out));
  CHECK_FALSE(ae::parse_u64s(body + "x", 3, out));
}

TEST_CASE("anti-entropy: key lists carry any bytes, and refuse keys without their hash", "[anti_entropy]") {
  std::string body;
  const std::string a = kv::storage_key("a"), b = kv::storage_key(std::string("\0\xff\n", 3));
  ae::append_key(body, a);
  ae::append_key(body, b);
  std::vector<std::string_view> keys;
  REQUIRE(ae::parse_keys(body, 10, keys));
  REQUIRE(keys.size() == 2);
  CHECK(keys[0] == a);
  CHECK(keys[1] == b);
  CHECK_FALSE(ae::parse_keys(body, 1, keys));                         // too many
  CHECK_FALSE(ae::parse_keys(body.substr(0, body.size() - 1), 10, keys));  // truncated
  std::string short_key;
  ae::append_key(short_key, "1234567");
  CHECK_FALSE(ae::parse_keys(short_key, 10, keys));
}

TEST_CASE("anti-entropy: floor records round-trip; out of order, out of bounds or zero floors are refused", "[anti_entropy][floors]") {
  using ae::SegmentFloor;
  const std::vector<SegmentFloor> floors{{0, 1}, {7, 99}, {ae::kSegments - 1, kv::kMaxTagCounter}};
  std::string body;
  ae::append_floors(body, floors);
  CHECK(body.size() == 36);
  std::vector<SegmentFloor> out;
  REQUIRE(ae::parse_floors(body, out));
  CHECK(out == floors);
  CHECK(ae::parse_floors("", out));
  CHECK(out.empty());
  auto refused = [&](std::vector<SegmentFloor> v) {
    std::string b;
    ae::append_floors(b, v);
    return !ae::parse_floors(b, out);
  };
  CHECK(refused({{7, 1}, {7, 2}}));
  CHECK(refused({{8, 1}, {7, 2}}));
  CHECK(refused({{ae::kSegments, 1}}));
  CHECK(refused({{1, 0}}));
  CHECK(refused({{1, kv::kMaxTagCounter + 1}}));
  CHECK_FALSE(ae::parse_floors(body.substr(1), out));
}

TEST_CASE("anti-entropy: a purge's floors are each segment's greatest tombstone counter", "[anti_entropy][floors]") {
  auto key_in = [](std::uint32_t segment, char c) {
    std::string k;
    kv::append_be64(k, ae::segment_range(segment).lo + static_cast<unsigned char>(c));
    return k + c;
  };
  const std::vector<std::pair<std::string, kv::Tag>> tombstones{
      {key_in(2, 'a'), {30, 1}}, {key_in(2, 'b'), {50, 1}}, {key_in(2, 'c'), {40, 1}}, {key_in(5, 'a'), {7, 1}}};
  CHECK(ae::floors_of(tombstones) == std::vector<ae::SegmentFloor>{{2, 50}, {5, 7}});
}

TEST_CASE("anti-entropy: diff requests round-trip; bad ones are refused; salts change short digests", "[anti_entropy]") {
  const std::vector<ae::SegmentDigests> segments{{3, {7, 1, 9}}, {4, {}}, {ae::kSegments - 1, {42}}};
  std::string body;
  ae::append_diff_request(body, 0xabcdef, segments);
  std::uint64_t salt = 0;
  std::vector<ae::SegmentDigests> out;
  REQUIRE(ae::parse_diff_request(body, salt, out));
  CHECK(salt == 0xabcdef);
  CHECK(out == segments);
  CHECK_FALSE(ae::parse_diff_request(body.substr(0, body.size() - 1), salt, out));
  CHECK_FALSE(ae::parse_diff_request("1234567", salt, out));
  auto refused = [&](std::vector<ae::SegmentDigests> v) {
    std::string b;
    ae::append_diff_request(b, 1, v);
    return !ae::parse_diff_request(b, salt, out);
  };
  CHECK(refused({{4, {}}, {3, {}}}));
  CHECK(refused({{ae::kSegments, {}}}));
  CHECK(refused({{1, std::vector<std::uint32_t>(ae::kMaxKeysPerFetch + 1)}}));
  // Each segment's number (as its gap from the one before) and count take 1 to 3 bytes: here 8 of
  // salt, 1 + 1 + 3 x 4, 1 + 1, and 3 (65,535 - 5) + 1 + 4.
  CHECK(body.size() == 8 + 14 + 2 + 8);
  const std::string salt8(8, '\0');
  CHECK(ae::parse_diff_request(salt8 + std::string("\x05\x00", 2), salt, out));
  CHECK(out == std::vector<ae::SegmentDigests>{{5, {}}});
  CHECK_FALSE(ae::parse_diff_request(salt8 + std::string("\x85\x00\x00", 3), salt, out));  // 5 in two bytes
  CHECK_FALSE(ae::parse_diff_request(salt8 + std::string("\x85", 1), salt, out));            // cut short
  CHECK_FALSE(ae::parse_diff_request(salt8 + "\xff\xff\xff\xff\x1f" + std::string(1, '\0'), salt, out));  // above 2^32
  // 2-byte digests (what a serving node's exchanger sends): the same request in 2 bytes a digest,
  // and each the top half of the 4-byte one.
  const std::vector<ae::SegmentDigests> narrow{{3, {7, 1, 0xffff}}, {4, {}}, {ae::kSegments - 1, {42}}};
  std::string body2;
  ae::append_diff_request(body2, 0xabcdef, narrow, 2);
  CHECK(body2.size() == 8 + (1 + 1 + 3 * 2) + 2 + (3 + 1 + 2));
  REQUIRE(ae::parse_diff_request(body2, salt, out, 2));
  CHECK((salt == 0xabcdef && out == narrow));
  CHECK_FALSE(ae::parse_diff_request(body2.substr(0, body2.size() - 1), salt, out, 2));
  CHECK_FALSE(ae::parse_diff_request(body2, salt, out, 3));
  CHECK(ae::short_digest(0x1234, 77, 2) == ae::short_digest(0x1234, 77) >> 16);
  CHECK(ae::short_digest(0x1234, 77, 4) == ae::short_digest(0x1234, 77));
  int same = 0;
  for (std::uint64_t d = 1; d < 1000; ++d) same += ae::short_digest(d, 1) == ae::short_digest(d, 2);
  CHECK(same < 3);
  CHECK(ae::short_digest(5, 9) == ae::short_digest(5, 9));
  int same_leaf = 0;
  for (std::uint64_t d = 1; d < 1000; ++d) same_leaf += ae::short_leaf(d, 1) == ae::short_leaf(d, 2);
  CHECK(same_leaf < 3);
}

TEST_CASE("anti-entropy: groups of buckets, their hashes mixed by bucket and their sums added", "[anti_entropy]") {
  std::vector<std::uint64_t> buckets(ae::kBuckets), sums(ae::kBuckets);
  for (std::uint32_t b = 0; b < ae::kBuckets; ++b) {
    buckets[b] = 0x9e3779b97f4a7c15ULL * (b + 1);
    sums[b] = b;
  }
  const auto groups = ae::groups_of(buckets, sums);
  REQUIRE(groups.size() == 2 * ae::kGroups);
  CHECK(groups == ae::groups_of(buckets, sums));
  std::uint64_t first_sum = 0;
  for (std::uint32_t b = 0; b < ae::kBucketsPerGroup; ++b) first_sum += b;
  CHECK(groups[ae::kGroups] == first_sum);
  // One bucket changed: its group's hash and sum change, no other group's.
  auto changed = buckets;
  changed[ae::kBucketsPerGroup * 5 + 3] ^= 1;
  auto other = ae::groups_of(changed, sums);
  for (std::uint32_t g = 0; g < ae::kGroups; ++g) CHECK((other[g] != groups[g]) == (g == 5));
  CHECK(std::equal(other.begin() + ae::kGroups, other.end(), groups.begin() + ae::kGroups));
  // Two buckets of a group changed alike (the same keys' digests XORed into both) do not cancel out,
  // as they would in a plain XOR of the buckets.
  changed = buckets;
  changed[ae::kBucketsPerGroup * 5 + 3] ^= 0xdeadbeef;
  changed[ae::kBucketsPerGroup * 5 + 4] ^= 0xdeadbeef;
  CHECK(ae::groups_of(changed, sums)[5] != groups[5]);
}
