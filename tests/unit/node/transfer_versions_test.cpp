// common/transfer.hpp's versioned records (scan?versions=1, ingest?versions=1): the bytes, the round
// trip, and every way a body is refused. The plain format has its tests in tests/unit/common.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "common/varint.hpp"
#include "common/version.hpp"

using kv::Record;
using kv::Tag;

namespace {

std::string be32(std::uint32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
  return out;
}

std::string be64(std::uint64_t v) {
  std::string out;
  kv::append_be64(out, v);
  return out;
}

const std::string kKey = kv::storage_key("k");

// Each record parsed back as it was written, field by field.
void check_same(const std::vector<Record>& out, const std::vector<Record>& in) {
  REQUIRE(out.size() == in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    INFO("record " << i);
    CHECK(out[i].key == in[i].key);
    CHECK(out[i].value == in[i].value);
    CHECK(out[i].tag == in[i].tag);
    CHECK(out[i].tombstone == in[i].tombstone);
  }
}

}  // namespace

TEST_CASE("versioned records: the exact bytes", "[transfer][versions]") {
  std::string out;
  kv::append_versioned_record(out, {kKey, "val", {0x0102, 0xa0b0c0d0e0f00010}, false});
  CHECK(out == be32(9) + kKey + "v" + be64(0x0102) + be64(0xa0b0c0d0e0f00010) + be32(3) + "val");
  out.clear();
  kv::append_versioned_record(out, {kKey, {}, {7, 1}, true});
  CHECK(out == be32(9) + kKey + "t" + be64(7) + be64(1) + be32(0));
}

TEST_CASE("versioned records: a round trip of values, tombstones, empty and binary values", "[transfer][versions]") {
  const std::string binary("\0\xff\x01 \"\n", 6);
  const std::string big(70000, 'b');
  const std::string odd_key = kv::storage_key(std::string("\0k\xfe", 3));
  const std::vector<Record> in = {
      {kKey, "value", {1, 2}, false},
      {odd_key, {}, {kv::kMaxTagCounter, ~std::uint64_t{0}}, true},
      {kKey, "", {}, false},  // an empty value under Tag{} (data from before versions)
      {kKey, binary, {3, 4}, false},
      {odd_key, big, {5, 6}, false},
  };
  std::string body;
  for (const auto& r : in) kv::append_versioned_record(body, r);
  std::vector<Record> out;
  std::string err;
  REQUIRE(kv::parse_records(body, out, err, true));
  check_same(out, in);
  // An empty body is no records.
  CHECK(kv::parse_records("", out, err, true));
  CHECK(out.empty());
}

TEST_CASE("versioned records: every malformed body is refused with where and why", "[transfer][versions]") {
  std::string good;
  kv::append_versioned_record(good, {kKey, "v", {1, 1}, false});
  std::vector<Record> out;
  std::string err;
  auto refused = [&](const std::string& body) {
    err.clear();
    const bool ok = kv::parse_records(good + body, out, err, true);
    return ok ? std::string("accepted") : err;
  };
  const std::string head = be32(9) + kKey;
  CHECK(refused(head) == "records: entry 2: truncated version");
  CHECK(refused(head + "v" + be64(1)) == "records: entry 2: truncated version");
  CHECK(refused(head + "x" + be64(1) + be64(1) + be32(0)) == "records: entry 2: kind must be 'v' or 't'");
  CHECK(refused(head + "v" + be64(kv::kMaxTagCounter + 1) + be64(1) + be32(0)) == "records: entry 2: version counter too large");
  CHECK(refused(head + "t" + be64(1) + be64(1) + be32(1) + "x") == "records: entry 2: a tombstone has no value");
  CHECK(refused(head + "v" + be64(1) + be64(1)) == "records: entry 2: truncated value length");
  CHECK(refused(head + "v" + be64(1) + be64(1) + be32(5) + "abc") == "records: entry 2: truncated value");
  CHECK(refused(be32(3) + "abc") == "records: entry 2: key shorter than its 8-byte hash");
  // Every cut of a good record is refused, never misread.
  for (std::size_t cut = 1; cut < good.size(); ++cut) {
    INFO("cut " << cut);
    CHECK_FALSE(kv::parse_records(std::string_view(good).substr(0, good.size() - cut), out, err, true));
  }
  // The largest counter is fine.
  CHECK(refused(head + "v" + be64(kv::kMaxTagCounter) + be64(1) + be32(0)) == "accepted");
}

TEST_CASE("versioned and plain records are not each other", "[transfer][versions]") {
  std::string versioned, plain;
  kv::append_versioned_record(versioned, {kKey, "v", {1, 1}, false});
  kv::append_record(plain, kKey, "v");
  std::vector<Record> out;
  std::string err;
  CHECK_FALSE(kv::parse_records(versioned, out, err, false));
  CHECK_FALSE(kv::parse_records(plain, out, err, true));
  // A plain record parses as Tag{}, a value.
  REQUIRE(kv::parse_records(plain, out, err, false));
  REQUIRE(out.size() == 1);
  CHECK(out[0].tag == Tag{});
  CHECK_FALSE(out[0].tombstone);
}

TEST_CASE("compact records: the exact bytes, at least 17 fewer than versioned for short keys and values", "[transfer][versions]") {
  std::string out;
  kv::append_compact_record(out, {kKey, "val", {300, 0xa0b0c0d0e0f00010}, false});
  CHECK(out == std::string("\x01k") + "v" + "\xac\x02" + be64(0xa0b0c0d0e0f00010) + "\x03" + "val");
  std::string versioned;
  kv::append_versioned_record(versioned, {kKey, "val", {300, 0xa0b0c0d0e0f00010}, false});
  // The hash, and the key's length, the counter (2 bytes here, 5 under 2^35) and the value's length.
  CHECK(versioned.size() - out.size() == 8 + (4 - 1) + (8 - 2) + (4 - 1));
  out.clear();
  kv::append_compact_record(out, {kKey, {}, {7, 1}, true});
  CHECK(out == std::string("\x01k") + "t" + "\x07" + be64(1) + std::string(1, '\0'));
}

TEST_CASE("compact records: a round trip rebuilds the stored keys", "[transfer][versions]") {
  const std::string binary("\0\xff\x01 \"\n", 6);
  const std::string big(70000, 'b');
  const std::string odd_key = kv::storage_key(std::string("\0k\xfe", 3));
  const std::string long_key = kv::storage_key(std::string(300, 'x'));
  const std::vector<Record> in = {
      {kKey, "value", {1, 2}, false},
      {odd_key, {}, {kv::kMaxTagCounter, ~std::uint64_t{0}}, true},
      {kKey, "", {}, false},
      {long_key, binary, {3, 4}, false},
      {odd_key, big, {5, 6}, false},
  };
  std::string body;
  for (const auto& r : in) kv::append_compact_record(body, r);
  std::vector<Record> out;
  std::string keys, err;
  REQUIRE(kv::parse_compact_records(body, out, keys, err));
  check_same(out, in);
  CHECK(kv::parse_compact_records("", out, keys, err));
  CHECK(out.empty());
}

TEST_CASE("compact records: every malformed body is refused with where and why", "[transfer][versions]") {
  std::string good;
  kv::append_compact_record(good, {kKey, "v", {1, 1}, false});
  std::vector<Record> out;
  std::string keys, err;
  auto refused = [&](const std::string& body) {
    err.clear();
    return kv::parse_compact_records(good + body, out, keys, err) ? std::string("accepted") : err;
  };
  const std::string e2 = "compact records: entry 2: ";
  CHECK(refused("\x05k") == e2 + "bad or truncated key");
  CHECK(refused(std::string("\x81\x00", 2) + "k") == e2 + "bad or truncated key");  // 1 in two bytes
  CHECK(refused("\x01kx") == e2 + "kind must be 'v' or 't'");
  CHECK(refused("\x01k") == e2 + "kind must be 'v' or 't'");
  CHECK(refused("\x01kv") == e2 + "bad, truncated or too large version counter");
  std::string too_large;
  kv::append_varint(too_large, kv::kMaxTagCounter + 1);
  CHECK(refused("\x01kv" + too_large + be64(1) + std::string(1, '\0')) == e2 + "bad, truncated or too large version counter");
  std::string largest;
  kv::append_varint(largest, kv::kMaxTagCounter);
  CHECK(refused("\x01kv" + largest + be64(1) + std::string(1, '\0')) == "accepted");
  CHECK(refused("\x01kv\x01" + be64(1).substr(0, 7)) == e2 + "truncated version writer");
  CHECK(refused("\x01kv\x01" + be64(1)) == e2 + "bad or truncated value");
  CHECK(refused("\x01kv\x01" + be64(1) + "\x05" + "abc") == e2 + "bad or truncated value");
  CHECK(refused("\x01kt\x01" + be64(1) + "\x01" + "x") == e2 + "a tombstone has no value");
  for (std::size_t cut = 1; cut < good.size(); ++cut) {
    INFO("cut " << cut);
    CHECK_FALSE(kv::parse_compact_records(std::string_view(good).substr(0, good.size() - cut), out, keys, err));
  }
}

TEST_CASE("varints: one encoding per number, bounded", "[transfer][versions]") {
  for (const std::uint64_t v : {std::uint64_t{0}, std::uint64_t{127}, std::uint64_t{128}, std::uint64_t{1} << 35,
                                ~std::uint64_t{0}}) {
    std::string s;
    kv::append_varint(s, v);
    std::string_view in = s;
    std::uint64_t got = 1;
    REQUIRE(kv::read_varint(in, got));
    CHECK((got == v && in.empty()));
  }
  std::uint64_t v = 0;
  std::string_view overlong("\x80\x00", 2), eleven("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10), cut("\x80", 1);
  CHECK_FALSE(kv::read_varint(overlong, v));
  CHECK_FALSE(kv::read_varint(eleven, v));  // bits above 64
  CHECK_FALSE(kv::read_varint(cut, v));
  std::string_view big("\x80\x01", 2);
  CHECK_FALSE(kv::read_varint(big, v, 127));
  CHECK(big.size() == 2);  // untouched when refused
}
