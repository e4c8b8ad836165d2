// The wire formats between ring-rebalance and kvnode's admin endpoints (/admin/scan, /admin/ingest,
// /admin/drop, /admin/count). Binary-safe: keys may hold any byte, values any UTF-8.
//
//   range list (request body of scan, drop, count): one range per line, "LO HI\n", each 16 lowercase
//     or uppercase hex digits, LO <= HI, ranges ascending and not overlapping.
//   records (scan's answer, ingest's body): per entry, 4-byte big-endian key length, the stored key
//     (8-byte ring hash + user key), 4-byte big-endian value length, the value.
//   versioned records (with versions=1): per entry, 4-byte big-endian key length, the stored key,
//     one byte 'v' (a value) or 't' (a tombstone), the tag (common/version.hpp) as 8-byte big-endian
//     counter and 8-byte big-endian writer, 4-byte big-endian value length (0 for a tombstone), the
//     value. Scans in this format return tombstones too, and ingest stores each record only if its
//     tag is newer than what the node holds (plain records ingest as the oldest tag: only where the
//     node holds nothing at all, value or tombstone).
//   compact records (anti-entropy's pull: POST /replica/diff with &records=compact): the versioned
//     records' fields with less framing. Per entry, the user key's length as a LEB128 varint
//     (common/varint.hpp), the user key (its 8-byte ring hash left out: the receiver computes it),
//     'v' or 't', the tag's counter as a varint, its writer as 8 bytes big-endian, the value's length
//     as a varint (0 for a tombstone), the value. A key and a value of under 128 bytes each and a
//     counter under 2^35 take 17 bytes fewer than a versioned record: a pulled record was 33 bytes
//     of framing and hash around its key and value (bench/RESULTS.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/ring_change.hpp"
#include "common/version.hpp"

namespace kv {

inline constexpr std::size_t kMaxRangesPerRequest = 65536;

void append_range(std::string& out, const HashRange& r);
// Returns false with `error` set ("line 3: LO > HI", ...) on any malformed, unordered or overlapping
// range, or more than kMaxRangesPerRequest of them.
bool parse_ranges(std::string_view body, std::vector<HashRange>& out, std::string& error);

struct Record {
  std::string_view key;    // stored key: 8-byte ring hash, then the user key
  std::string_view value;  // empty for a tombstone
  Tag tag{};               // plain records: none
  bool tombstone = false;
};

void append_record(std::string& out, std::string_view key, std::string_view value);
void append_versioned_record(std::string& out, const Record& r);
// Views into `body`. Returns false with `error` set when a record is truncated, a key is shorter
// than its 8-byte hash prefix, or (versioned) a kind byte is unknown, a tag's counter is above
// kMaxTagCounter, or a tombstone has a value.
bool parse_records(std::string_view body, std::vector<Record>& out, std::string& error, bool versioned = false);

// `r.key` is a stored key (its hash is the user key's: storage_key.hpp).
void append_compact_record(std::string& out, const Record& r);
// Keys are views into `keys` (the stored keys, rebuilt; replaced), values into `body`. False with
// `error` set as parse_records (versioned) says, and on a varint that is cut short, not the
// shortest, or too large.
bool parse_compact_records(std::string_view body, std::vector<Record>& out, std::string& keys, std::string& error);

// 16 lowercase hex digits / back. parse_hex64 accepts exactly 16 hex digits.
std::string hex64(std::uint64_t v);
bool parse_hex64(std::string_view s, std::uint64_t& out);
// Any bytes as lowercase hex (a scan cursor is a stored key) / back.
std::string hex_bytes(std::string_view bytes);
bool parse_hex_bytes(std::string_view hex, std::string& out);

}  // namespace kv
