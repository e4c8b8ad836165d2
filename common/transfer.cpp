#include "common/transfer.hpp"

#include "common/hash.hpp"
#include "common/storage_key.hpp"
#include "common/varint.hpp"

namespace kv {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string hex64(std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = kDigits[v & 0xf];
  return out;
}

bool parse_hex64(std::string_view s, std::uint64_t& out) {
  if (s.size() != 16) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    const int d = hex_digit(c);
    if (d < 0) return false;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  out = v;
  return true;
}

std::string hex_bytes(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

bool parse_hex_bytes(std::string_view hex, std::string& out) {
  if (hex.size() % 2) return false;
  out.clear();
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int a = hex_digit(hex[i]), b = hex_digit(hex[i + 1]);
    if (a < 0 || b < 0) return false;
    out.push_back(static_cast<char>(a * 16 + b));
  }
  return true;
}

void append_range(std::string& out, const HashRange& r) {
  out.append(hex64(r.lo)).append(" ").append(hex64(r.hi)).append("\n");
}

bool parse_ranges(std::string_view body, std::vector<HashRange>& out, std::string& error) {
  out.clear();
  std::size_t line_no = 0;
  while (!body.empty()) {
    ++line_no;
    const auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = "ranges: line " + std::to_string(line_no) + ": ";
    HashRange r;
    if (line.size() != 33 || line[16] != ' ' || !parse_hex64(line.substr(0, 16), r.lo) ||
        !parse_hex64(line.substr(17), r.hi)) {
      error = where + "expected \"LO HI\" as two 16-digit hex numbers";
      return false;
    }
    if (r.lo > r.hi) {
      error = where + "LO is above HI";
      return false;
    }
    if (!out.empty() && r.lo <= out.back().hi) {
      error = where + "ranges must ascend without overlapping";
      return false;
    }
    if (out.size() == kMaxRangesPerRequest) {
      error = "ranges: more than " + std::to_string(kMaxRangesPerRequest) + " in one request";
      return false;
    }
    out.push_back(r);
  }
  return true;
}

void append_record(std::string& out, std::string_view key, std::string_view value) {
  append_be32(out, static_cast<std::uint32_t>(key.size()));
  out.append(key);
  append_be32(out, static_cast<std::uint32_t>(value.size()));
  out.append(value);
}

void append_versioned_record(std::string& out, const Record& r) {
  append_be32(out, static_cast<std::uint32_t>(r.key.size()));
  out.append(r.key);
  out.push_back(r.tombstone ? 't' : 'v');
  append_be64(out, r.tag.counter);
  append_be64(out, r.tag.writer);
  append_be32(out, static_cast<std::uint32_t>(r.value.size()));
  out.append(r.value);
}

bool parse_records(std::string_view body, std::vector<Record>& out, std::string& error, bool versioned) {
  out.clear();
  // The message names the entry being read (built only on failure: this runs for every record pulled).
  const auto fail = [&](std::string_view why) {
    error = "records: entry " + std::to_string(out.size() + 1) + ": " + std::string(why);
    return false;
  };
  while (!body.empty()) {
    if (body.size() < 4) return fail("truncated key length");
    const std::uint32_t klen = read_be32(body);
    body.remove_prefix(4);
    if (klen < kStorageKeyPrefix || body.size() < klen)
      return fail(klen < kStorageKeyPrefix ? "key shorter than its 8-byte hash" : "truncated key");
    Record r;
    r.key = body.substr(0, klen);
    body.remove_prefix(klen);
    if (versioned) {
      if (body.size() < 17) return fail("truncated version");
      if (body[0] != 'v' && body[0] != 't') return fail("kind must be 'v' or 't'");
      r.tombstone = body[0] == 't';
      r.tag = {read_be64(body.substr(1)), read_be64(body.substr(9))};
      body.remove_prefix(17);
      if (r.tag.counter > kMaxTagCounter) return fail("version counter too large");
    }
    if (body.size() < 4) return fail("truncated value length");
    const std::uint32_t vlen = read_be32(body);
    body.remove_prefix(4);
    if (body.size() < vlen) return fail("truncated value");
    r.value = body.substr(0, vlen);
    body.remove_prefix(vlen);
    if (r.tombstone && vlen != 0) return fail("a tombstone has no value");
    out.push_back(r);
  }
  return true;
}

void append_compact_record(std::string& out, const Record& r) {
  const std::string_view key = user_key(r.key);
  append_varint(out, key.size());
  out.append(key);
  out.push_back(r.tombstone ? 't' : 'v');
  append_varint(out, r.tag.counter);
  append_be64(out, r.tag.writer);
  append_varint(out, r.value.size());
  out.append(r.value);
}

bool parse_compact_records(std::string_view body, std::vector<Record>& out, std::string& keys, std::string& error) {
  out.clear();
  keys.clear();
  std::vector<std::size_t> ends;  // of each record's stored key in `keys`; views are taken once it stops growing
  const auto fail = [&](std::string_view why) {  // as parse_records's
    error = "compact records: entry " + std::to_string(out.size() + 1) + ": " + std::string(why);
    return false;
  };
  while (!body.empty()) {
    std::uint64_t klen = 0, vlen = 0;
    if (!read_varint(body, klen) || body.size() < klen) return fail("bad or truncated key");
    const std::string_view key = body.substr(0, klen);
    body.remove_prefix(klen);
    append_be64(keys, hash_key(key));
    keys.append(key);
    ends.push_back(keys.size());
    Record r;
    if (body.empty() || (body[0] != 'v' && body[0] != 't')) return fail("kind must be 'v' or 't'");
    r.tombstone = body[0] == 't';
    body.remove_prefix(1);
    if (!read_varint(body, r.tag.counter, kMaxTagCounter)) return fail("bad, truncated or too large version counter");
    if (body.size() < 8) return fail("truncated version writer");
    r.tag.writer = read_be64(body);
    body.remove_prefix(8);
    if (!read_varint(body, vlen) || body.size() < vlen) return fail("bad or truncated value");
    r.value = body.substr(0, vlen);
    body.remove_prefix(vlen);
    if (r.tombstone && vlen != 0) return fail("a tombstone has no value");
    out.push_back(r);
  }
  std::size_t from = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].key = std::string_view(keys).substr(from, ends[i] - from);
    from = ends[i];
  }
  return true;
}

}  // namespace kv
