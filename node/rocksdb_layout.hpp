// What the RocksDB engine keeps on disk, and how a data directory comes to hold it. Three column
// families:
//   default     stored key -> [format 'v'][tag counter, be64][tag writer, be64][the value's bytes]:
//               a value and its tag in one record
//   tombstones  stored key -> [tag counter, be64][tag writer, be64] for each key whose last write
//               was a delete
//   meta        "format" -> kFormatVersion once the directory has this layout (upgrade, in the .cpp);
//               "reserved" -> R, be64: the counters untagged writes may use (RocksStore::commit);
//               "upgrading" -> the last stored key rewritten by an upgrade not yet finished
// No key ever has both a value and a tombstone record (node/store_rocksdb.cpp says how writes keep
// it so). Private to the engine: node/store_rocksdb.cpp and node/rocksdb_*.cpp include it.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "node/tombstone_filter.hpp"
#include "node/versions.hpp"

namespace kv::rocks {

inline rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

inline std::string be64_key(std::uint64_t v) {
  std::string k;
  append_be64(k, v);
  return k;
}

// The database and its three families, as opened.
struct Families {
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* data = nullptr;
  rocksdb::ColumnFamilyHandle* tombs = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
};

// Keys per atomic batch of drops, and per write of an upgrade.
inline constexpr std::size_t kBatchKeys = 1024;

// ---- records ----

inline constexpr char kValueFormat = 'v';
inline constexpr std::size_t kTagBytes = 8 + 8;
inline constexpr std::size_t kHeaderBytes = 1 + kTagBytes;  // before a value's bytes

// The header of a value record: the format byte, then the tag.
struct Header {
  char bytes[kHeaderBytes];
  explicit Header(const Tag& t) {
    bytes[0] = kValueFormat;
    put_be64(bytes + 1, t.counter);
    put_be64(bytes + 9, t.writer);
  }
  rocksdb::Slice slice() const { return {bytes, kHeaderBytes}; }
  static void put_be64(char* out, std::uint64_t v) {
    for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
  }
};

inline Tag read_tag(std::string_view in) { return {read_be64(in), read_be64(in.substr(8))}; }

// A value record: its tag, and its value's bytes (a view into `record`).
inline bool decode_value(std::string_view record, Tag& tag, std::string_view& value) {
  if (record.size() < kHeaderBytes || record[0] != kValueFormat) return false;
  tag = read_tag(record.substr(1));
  value = record.substr(kHeaderBytes);
  return true;
}

inline std::string encode_tombstone(const Tag& t) {
  std::string out;
  out.reserve(kTagBytes);
  append_be64(out, t.counter);
  append_be64(out, t.writer);
  return out;
}

inline bool decode_tombstone(std::string_view record, Tag& tag) {
  if (record.size() != kTagBytes) return false;
  tag = read_tag(record);
  return true;
}

inline rocksdb::Status bad_record(std::string_view family, std::string_view key) {
  return rocksdb::Status::Corruption("malformed " + std::string(family) + " record for stored key " + hex_bytes(key));
}

// ---- the meta family ----

inline constexpr std::string_view kFormatKey = "format";
inline constexpr std::string_view kFormatVersion = "tags-in-values-1";
inline constexpr std::string_view kReserveKey = "reserved";
inline constexpr std::string_view kUpgradeKey = "upgrading";
// Counters reserved at a time: one reservation write per 2^20 untagged writes; a restart skips at
// most this many counters (of 2^62).
inline constexpr std::uint64_t kReserveStep = std::uint64_t{1} << 20;

// ---- opening a directory ----

// Before the open: refuses (StoreError) a directory with a "versions" family, the layout of a build
// between per-key versions and this one (tags in a family of their own), which was never released.
void refuse_unknown_layout(const std::string& dir, const rocksdb::DBOptions& options);

// After the open: reads the format marker and returns the counter reservation R (every counter on
// disk is below it), upgrading first a directory that has no marker. `write` is how the upgrade
// writes its batches. Throws StoreError.
std::uint64_t open_layout(const std::string& dir, const Families& f, const rocksdb::WriteOptions& write);

// The filter and count of tombstones, from one pass over the tombstones family. Throws StoreError.
void load_tombstones(const Families& f, TombstoneFilter& filter);

}  // namespace kv::rocks
