// A node's storage engine. Keys passed here are storage keys (common/storage_key.hpp): the ring hash
// first, so each ring arc is one contiguous key range. Every method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ring_change.hpp"
#include "common/transfer.hpp"
#include "common/version.hpp"

namespace kv {

// conflict: a write whose tag equals the one held, with another value or kind (common/version.hpp).
// below_floor: a coordinator's store refused, not stored, because the key holds nothing and its tag
// is not above its segment's floor (node/floors.hpp: a key deleted there may have had it).
enum class StoreStatus { ok, not_found, conflict, below_floor, error };

// What the one rule of versioned writes decides for a write (node/versions.hpp).
enum class Verdict : std::uint8_t {
  apply,           // store the write
  keep,            // leave the key as it is: superseded, the same write again, or an untagged delete of no value
  conflict,        // refuse it: its tag is held by another write (a bug somewhere, not a tie)
  compare_values,  // the same real tag as the value held: keep if the values are equal, else conflict
  below_floor,     // refuse it: a floored write where the key holds nothing, its tag not above the floor
};

// One write of one key, applied in one atomic step against every other write of that key.
struct WriteOp {
  // put / del: a client's write, or one ingested record (a value or a tombstone).
  // drop_value / drop_tombstone: the rebalancer's purge of one key, done only if the key still holds
  // that kind when the step runs, so that a purge never deletes a write that came after its scan.
  // purge_tombstone: anti-entropy's purge of a tombstone every replica holds, done only if the key
  // still holds a tombstone with exactly `tag` (node/floors.hpp).
  enum class Kind { put, del, drop_value, drop_tombstone, purge_tombstone } kind = Kind::put;
  std::string key;  // storage key
  std::string value;
  // Without a tag (a plain client write) the store makes one, newer than what the key holds. With
  // one, the write goes in only if its tag is newer than the one held (Tag{}, the tag of plain
  // records and of data written before versions, goes in only where the key holds nothing at all).
  std::optional<Tag> tag = std::nullopt;
  // A coordinator's store of a value (/replica/put): where the key holds nothing, or a tombstone
  // older than it at or below the segment's floor (StoreObserver::admits of its own tag: one taken back after a
  // purge of a newer one would otherwise let an older value in by its tag), it goes in only if the
  // observer admits its tag (StoreObserver::admits: above the floor), else below_floor. A tombstone
  // is never refused: it brings nothing back. With `floors_seen` (a record anti-entropy pulled), a
  // value is checked only if the floors changed since that generation (node/floors.hpp says why).
  bool floored = false;
  std::uint64_t floors_seen = 0;
};

struct WriteResult {
  // put: ok. del: ok if the key held a value before, not_found otherwise (even when a tagged delete
  // stored a tombstone). conflict: refused, the same tag holds another write. drop_*: ok.
  StoreStatus status = StoreStatus::ok;
  std::string err;
  Tag held{};              // the tag the key holds after the write (Tag{}: nothing)
  bool applied = false;    // the write was stored (not superseded, not refused)
  bool had_value = false;  // the key held a value before the write (false for an untagged put, which
                           // does not read what it replaces: node/versions.hpp)
  bool tombstone = false;  // the key holds a tombstone after the write
};

// One batch of a scan over ring ranges: records (transfer.hpp format) in stored-key order.
struct ScanBatch {
  std::string records;
  std::size_t count = 0;
  std::string last_key;  // the last stored key returned: the cursor to resume after
  bool done = false;     // every range was scanned to its end
};

// What a key holds, as far as ordering goes.
struct Held {
  enum class Kind : std::uint8_t { nothing, value, tombstone };
  Kind kind = Kind::nothing;
  Tag tag{};  // Tag{} with nothing

  bool value() const noexcept { return kind == Kind::value; }
  bool tombstone() const noexcept { return kind == Kind::tombstone; }
  friend bool operator==(const Held&, const Held&) = default;
};

// Told of every change a store makes to what a key holds (a write, an ingested record, a drop), once
// it is durable, in the key's atomic step: for one key, the calls come in the order of the changes,
// each `before` the `now` of the one before. kvnode's hash trees (node/replica_trees.hpp) follow the
// store this way. Called from any writing thread; must not call back into the store.
class StoreObserver {
 public:
  virtual ~StoreObserver() = default;
  virtual void changed(std::string_view key, const Held& before, const Held& now) noexcept = 0;
  // Whether a floored write of `tag` may go in where `key` holds nothing (`floors_seen`: the
  // generation of the floors its record was fetched under, or 0). With 0 and a tombstone's tag:
  // whether that tombstone, held by the key, shields it (is above the floor: node/floors.hpp). Asked
  // inside the key's atomic step, so that it is ordered against a purge of the key (whose floor is
  // raised first).
  virtual bool admits(std::string_view key, const Tag& tag, std::uint64_t floors_seen) const noexcept {
    (void)key, (void)tag, (void)floors_seen;
    return true;
  }
};

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The storage engine's own state, for /metrics and for benchmarks that wait for it to settle after
// a fill. The memory engine has none of it: all zero.
struct EngineStats {
  std::uint64_t sst_bytes = 0;                 // table files on disk
  std::uint64_t memtable_bytes = 0;            // written, in memory, not flushed to a table file yet
  std::uint64_t pending_compaction_bytes = 0;  // RocksDB's estimate of what compaction still has to rewrite
  std::uint64_t running_compactions = 0;
  std::uint64_t running_flushes = 0;
  std::uint64_t l0_files = 0;                  // each one a point read may have to look in
  std::uint64_t block_cache_bytes = 0;
  std::uint64_t block_cache_capacity = 0;
};

// Every value and every tombstone a store holds carries a tag (common/version.hpp); a key holds a
// value, a tombstone, or nothing.
class Store {
 public:
  virtual ~Store() = default;
  // The value only: the client's read path, which never reads a tag. On error, `err` says why (the
  // storage engine's own message).
  virtual StoreStatus get(std::string_view key, std::string& value, std::string& err) = 0;
  // The value with its tag, read consistently; not_found for a tombstone (`tombstone` set) or for
  // nothing (`tag` Tag{}).
  virtual StoreStatus get_versioned(std::string_view key, std::string& value, Tag& tag, bool& tombstone,
                                    std::string& err) = 0;
  // Applies `op` in one atomic step per key and returns once it is durable as configured: in the
  // write-ahead log (survives a process crash), and with sync on, fsynced (survives power loss).
  virtual WriteResult write(WriteOp op) = 0;
  // Untagged writes (write() without a tag), for callers that need only the status.
  StoreStatus put(std::string_view key, std::string_view value, std::string& err) {
    return status_of(write({WriteOp::Kind::put, std::string(key), std::string(value)}), err);
  }
  StoreStatus del(std::string_view key, std::string& err) {
    return status_of(write({WriteOp::Kind::del, std::string(key), {}}), err);
  }
  // Values held (RocksDB: its estimate; memory: exact).
  virtual std::uint64_t key_count() = 0;
  virtual std::string_view engine() const noexcept = 0;
  // Makes everything acknowledged durable on disk (called on clean shutdown).
  virtual void flush() = 0;
  virtual EngineStats engine_stats() { return {}; }
  // Empty while writes work; after a storage error that stopped them, why (reads still work).
  virtual std::string write_error() const { return {}; }

  // True when each write waits for an fsync: the server should then hand writes to submit() and
  // await the answer instead of blocking its event loop in write().
  virtual bool group_commit() const noexcept { return false; }
  // Group commit: queues `op`; a committer thread applies everything queued since its last commit
  // as one batch with one fsync, then calls each `done` (on the committer thread). Only meaningful
  // when group_commit() is true; the default applies the write inline.
  virtual void submit(WriteOp op, std::function<void(WriteResult)> done) { done(write(std::move(op))); }
  // Group commits so far (each one batch, one fsync); 0 without group commit.
  virtual std::uint64_t commits() const noexcept { return 0; }

  // Moving data (ring-rebalance, through kvnode's /admin endpoints). Ranges are ascending ring-hash
  // ranges (transfer.hpp); stored keys sort by hash, so each range is one contiguous stretch.

  // Stored keys in `ranges`, in order, strictly after the stored key `after` (empty: from the start),
  // until `limit` records or `max_bytes` of records (at least one record) or the end of the ranges.
  // Plain: the values, as records. `versioned`: values and tombstones with their tags, as versioned
  // records, each tag read consistently with its value.
  virtual StoreStatus scan(std::span<const HashRange> ranges, std::string_view after, std::size_t limit,
                           std::size_t max_bytes, bool versioned, ScanBatch& out, std::string& err) = 0;
  // How many values `ranges` hold, and their bytes as stored (key and value).
  struct Size {
    std::uint64_t keys = 0, bytes = 0;
  };
  virtual StoreStatus measure(std::span<const HashRange> ranges, Size& out, std::string& err) = 0;
  // How many values `ranges` hold (measure's keys).
  StoreStatus count(std::span<const HashRange> ranges, std::uint64_t& n, std::string& err) {
    Size size;
    const StoreStatus status = measure(ranges, size, err);
    n = size.keys;
    return status;
  }
  // Each record as a tagged write (a value, or a tombstone), newer wins, each atomic against client
  // writes of the same key. A plain record (Tag{}) goes in only where the key holds nothing at all.
  // `written` counts those stored, `conflicts` those refused (the same tag holds another write); the
  // rest were superseded.
  // With `floors_seen` (anti-entropy's pulls: the floors' generation when the records were asked
  // for), each is a floored write (WriteOp::floors_seen); 0: none is.
  StoreStatus ingest(std::span<const Record> records, std::size_t& written, std::size_t& conflicts, std::string& err,
                     std::uint64_t floors_seen = 0) {
    return ingest_records(records, floors_seen, written, conflicts, err);
  }
  virtual StoreStatus ingest_records(std::span<const Record> records, std::uint64_t floors_seen, std::size_t& written,
                                     std::size_t& conflicts, std::string& err) = 0;
  // Deletes every value (with `data`) and every tombstone (with `tombstones`) in `ranges`, with its
  // tag: such a key then holds nothing. Each key is checked and deleted in one atomic step against
  // writes of it, so a value written after the scan that found a tombstone stays.
  virtual StoreStatus drop(std::span<const HashRange> ranges, bool data, bool tombstones, std::string& err) = 0;
  // Tombstones held (exact on both engines).
  virtual std::uint64_t tombstone_count() = 0;
  // The tombstones in `ranges`, in order, with their tags: at most `limit` of them (0: all).
  virtual StoreStatus tombstones(std::span<const HashRange> ranges, std::size_t limit,
                                 std::vector<std::pair<std::string, Tag>>& out, std::string& err) = 0;
  // Deletes each (stored key, tag) where the key still holds a tombstone of exactly that tag, each in
  // its key's atomic step; `purged` counts them.
  virtual StoreStatus purge_tombstones(std::span<const std::pair<std::string, Tag>> tombstones, std::size_t& purged,
                                       std::string& err) = 0;

  // The node's own small records, apart from the data (anti-entropy's incarnation, its state, what it
  // knows of its peers): the value, or "" when absent. set_meta returns once the record is durable
  // (RocksDB: the meta family, the write-ahead log fsynced; memory: until exit). Keys used by the
  // store itself are never touched: callers use names under "node/" and "peer/".
  virtual std::string meta(std::string_view key) = 0;
  virtual void set_meta(std::string_view key, std::string_view value) = 0;
  // Several records in one durable write; and every record whose key starts with `prefix`, in order.
  virtual void set_metas(std::span<const std::pair<std::string, std::string>> records) = 0;
  virtual std::vector<std::pair<std::string, std::string>> metas(std::string_view prefix) = 0;

  // Returns once every write step that had stored its change when settle() was called has also told
  // the observer of it: what a scan found before the call, the observer knows after it.
  virtual void settle() = 0;

  // Set once, before the store is written to from more than one thread (kvnode sets it before it
  // serves). With an observer, every write reads what it replaces (no blind untagged puts).
  void set_observer(StoreObserver* observer) noexcept { observer_ = observer; }

 protected:
  void notify(std::string_view key, const Held& before, const Held& now) noexcept {
    if (observer_ && before != now) observer_->changed(key, before, now);
  }
  bool observed() const noexcept { return observer_ != nullptr; }
  // In the key's atomic step, what the key holds read: below_floor for a floored value the floors
  // refuse where the key holds nothing, or a tombstone that does not shield it (older than the value,
  // and not admitted itself: at or below the floor); else nothing, and the tags decide. Tombstones are
  // never refused.
  std::optional<Verdict> floor_verdict(const WriteOp& op, const Held& held) const noexcept {
    if (!op.floored || !op.tag || op.kind != WriteOp::Kind::put || !observer_ || held.value()) return std::nullopt;
    if (held.tombstone() && (!(held.tag < *op.tag) || observer_->admits(op.key, held.tag, 0))) return std::nullopt;
    return observer_->admits(op.key, *op.tag, op.floors_seen) ? std::nullopt : std::optional(Verdict::below_floor);
  }

 private:
  StoreObserver* observer_ = nullptr;

  static StoreStatus status_of(WriteResult r, std::string& err) {
    err = std::move(r.err);
    return r.status;
  }
};

// How table files compress their blocks. A point read whose block is not in the block cache
// decompresses the whole block (4 KiB) for one record: with LZ4 a GET that misses the cache cost the
// node about a third less CPU than with Snappy here, at the same size on disk (bench/RESULTS.md,
// "Speed as the data grows").
enum class Compression { none, lz4, snappy, zstd };

// Each compression's name (kvnode --compression), in the order the flag lists them.
inline constexpr std::pair<Compression, std::string_view> kCompressionNames[] = {
    {Compression::lz4, "lz4"}, {Compression::snappy, "snappy"}, {Compression::zstd, "zstd"}, {Compression::none, "none"}};

constexpr std::string_view name_of(Compression c) noexcept {
  for (const auto& [value, name] : kCompressionNames)
    if (value == c) return name;
  return "?";
}

constexpr std::optional<Compression> compression_named(std::string_view name) noexcept {
  for (const auto& [value, n] : kCompressionNames)
    if (n == name) return value;
  return std::nullopt;
}

struct RocksOptions {
  std::string dir;
  bool sync = false;  // fsync the WAL before acknowledging each write, with group commit
  // The block cache (uncompressed data blocks), shared by the column families: a point read that finds
  // its block here neither reads the file, nor checks its checksum, nor decompresses it. It fills as
  // blocks are read, so a node holding less than this uses less. At 4 million keys over three nodes
  // (about 130 MiB of blocks per node) 256 MiB holds every block; with RocksDB's own 8 MiB most GETs
  // read and decompressed a block (bench/RESULTS.md, "Speed as the data grows").
  std::size_t block_cache_mb = kDefaultBlockCacheMb;
  Compression compression = Compression::lz4;
  static constexpr std::size_t kDefaultBlockCacheMb = 256;
};

// Throws StoreError when the database cannot be opened (locked, unreadable, ...).
std::unique_ptr<Store> open_rocksdb_store(const RocksOptions& options);
std::unique_ptr<Store> open_memory_store();

}  // namespace kv
