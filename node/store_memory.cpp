// The memory engine (--engine memory): a cache node, and the store the unit tests and the fuzzer
// drive the Api over.
#include <map>
#include <mutex>
#include <shared_mutex>

#include "common/storage_key.hpp"
#include "node/store.hpp"
#include "node/versions.hpp"

namespace kv {
namespace {

// Ordered like RocksDB, so arc scans work the same on a cache node. Nothing here survives a restart.
// One map holds values and tombstones with their tags, under one lock: every operation is atomic.
class MemoryStore final : public Store {
  struct Entry {
    std::string value;  // empty for a tombstone
    Tag tag{};
    bool tombstone = false;
  };
  using Map = std::map<std::string, Entry, std::less<>>;

 public:
  StoreStatus get(std::string_view key, std::string& value, std::string&) override {
    std::shared_lock lock(mutex_);
    auto it = map_.find(key);
    if (it == map_.end() || it->second.tombstone) return StoreStatus::not_found;
    value = it->second.value;
    return StoreStatus::ok;
  }

  StoreStatus get_versioned(std::string_view key, std::string& value, Tag& tag, bool& tombstone, std::string&) override {
    std::shared_lock lock(mutex_);
    auto it = map_.find(key);
    const Held held = held_at(it);
    tag = held.tag;
    tombstone = held.tombstone();
    if (!held.value()) return StoreStatus::not_found;
    value = it->second.value;
    return StoreStatus::ok;
  }

  WriteResult write(WriteOp op) override {
    std::unique_lock lock(mutex_);
    return apply_locked(op);
  }

  std::uint64_t key_count() override {
    std::shared_lock lock(mutex_);
    return map_.size() - tombstones_;
  }

  std::string_view engine() const noexcept override { return "memory"; }
  void flush() override {}

  StoreStatus scan(std::span<const HashRange> ranges, std::string_view after, std::size_t limit, std::size_t max_bytes,
                   bool versioned, ScanBatch& out, std::string&) override {
    std::shared_lock lock(mutex_);
    for (const auto& r : ranges) {
      auto it = map_.lower_bound(range_begin(r));
      if (!after.empty() && read_be64(after) >= r.lo) it = map_.upper_bound(after);
      for (; it != map_.end() && read_be64(it->first) <= r.hi; ++it) {
        const Entry& e = it->second;
        if (e.tombstone && !versioned) continue;
        if (out.count == limit || (out.count > 0 && out.records.size() >= max_bytes)) return StoreStatus::ok;
        if (versioned) append_versioned_record(out.records, {it->first, e.value, e.tag, e.tombstone});
        else append_record(out.records, it->first, e.value);
        out.last_key = it->first;
        ++out.count;
      }
    }
    out.done = true;
    return StoreStatus::ok;
  }

  StoreStatus measure(std::span<const HashRange> ranges, Size& out, std::string&) override {
    std::shared_lock lock(mutex_);
    out = {};
    for (const auto& r : ranges)
      for (auto it = map_.lower_bound(range_begin(r)); it != map_.end() && read_be64(it->first) <= r.hi; ++it)
        if (!it->second.tombstone) {
          ++out.keys;
          out.bytes += it->first.size() + it->second.value.size();
        }
    return StoreStatus::ok;
  }

  StoreStatus ingest_records(std::span<const Record> records, std::uint64_t floors_seen, std::size_t& written,
                             std::size_t& conflicts, std::string&) override {
    std::unique_lock lock(mutex_);
    written = conflicts = 0;
    for (const auto& r : records) {
      const WriteResult res = apply_locked(op_of(r, floors_seen));
      written += res.applied ? 1 : 0;
      conflicts += res.status == StoreStatus::conflict ? 1 : 0;
    }
    return StoreStatus::ok;
  }

  StoreStatus drop(std::span<const HashRange> ranges, bool data, bool tombstones, std::string&) override {
    std::unique_lock lock(mutex_);
    for (const auto& r : ranges) {
      for (auto it = map_.lower_bound(range_begin(r)); it != map_.end() && read_be64(it->first) <= r.hi;) {
        if (it->second.tombstone ? tombstones : data) {
          notify(it->first, held_at(it), {});
          it = erase(it);
        } else {
          ++it;
        }
      }
    }
    return StoreStatus::ok;
  }

  std::string meta(std::string_view key) override {
    std::shared_lock lock(mutex_);
    const auto it = meta_.find(key);
    return it == meta_.end() ? std::string() : it->second;
  }

  void set_meta(std::string_view key, std::string_view value) override {
    std::unique_lock lock(mutex_);
    meta_.insert_or_assign(std::string(key), std::string(value));
  }

  std::uint64_t tombstone_count() override {
    std::shared_lock lock(mutex_);
    return tombstones_;
  }

  StoreStatus tombstones(std::span<const HashRange> ranges, std::size_t limit, std::vector<std::pair<std::string, Tag>>& out,
                         std::string&) override {
    std::shared_lock lock(mutex_);
    for (const auto& r : ranges)
      for (auto it = map_.lower_bound(range_begin(r)); it != map_.end() && read_be64(it->first) <= r.hi; ++it) {
        if (!it->second.tombstone) continue;
        if (limit && out.size() == limit) return StoreStatus::ok;
        out.emplace_back(it->first, it->second.tag);
      }
    return StoreStatus::ok;
  }

  StoreStatus purge_tombstones(std::span<const std::pair<std::string, Tag>> tombstones, std::size_t& purged,
                               std::string&) override {
    std::unique_lock lock(mutex_);
    purged = 0;
    for (const auto& [key, tag] : tombstones) {
      WriteOp op{WriteOp::Kind::purge_tombstone, key, {}, tag};
      purged += apply_locked(op).applied ? 1 : 0;
    }
    return StoreStatus::ok;
  }

  void settle() override { std::unique_lock lock(mutex_); }  // writes notify under the lock

  void set_metas(std::span<const std::pair<std::string, std::string>> records) override {
    std::unique_lock lock(mutex_);
    for (const auto& [k, v] : records) meta_.insert_or_assign(k, v);
  }

  std::vector<std::pair<std::string, std::string>> metas(std::string_view prefix) override {
    std::shared_lock lock(mutex_);
    std::vector<std::pair<std::string, std::string>> out;
    for (auto it = meta_.lower_bound(prefix); it != meta_.end() && it->first.starts_with(prefix); ++it) out.emplace_back(*it);
    return out;
  }

 private:
  static std::string range_begin(const HashRange& r) {
    std::string k;
    append_be64(k, r.lo);
    return k;
  }

  Held held_at(Map::const_iterator it) const {
    if (it == map_.end()) return {};
    return {it->second.tombstone ? Held::Kind::tombstone : Held::Kind::value, it->second.tag};
  }

  // One write, under the unique lock.
  WriteResult apply_locked(const WriteOp& op) {
    auto it = map_.find(op.key);
    const Held before = held_at(it);
    if (is_drop(op.kind)) {
      WriteResult r;
      r.applied = drops(op, before);
      if (r.applied) {
        erase(it);
        notify(op.key, before, {});
      }
      return r;
    }
    const Outcome o = decide(op, before, tags_, floor_verdict(op, before), [&] { return it->second.value == op.value; });
    if (o.verdict == Verdict::conflict) report_conflict(op.key, *op.tag);
    if (o.verdict == Verdict::apply) {
      store(it, op, o.now);
      notify(op.key, before, o.now);
    }
    return result_of(op, before, o);
  }

  void store(Map::iterator it, const WriteOp& op, const Held& now) {
    if (it == map_.end()) it = map_.emplace(op.key, Entry{}).first;
    Entry& e = it->second;
    tombstones_ += now.tombstone() ? 1 : 0;
    tombstones_ -= e.tombstone ? 1 : 0;
    e.tombstone = now.tombstone();
    e.tag = now.tag;
    if (!e.tombstone) {
      e.value.assign(op.value);
    } else {
      e.value.clear();
      e.value.shrink_to_fit();  // a tombstone keeps no memory of the value it replaced
    }
  }

  Map::iterator erase(Map::iterator it) {
    tombstones_ -= it->second.tombstone ? 1 : 0;
    return map_.erase(it);
  }

  std::shared_mutex mutex_;
  Map map_;
  std::size_t tombstones_ = 0;  // entries of map_ that are tombstones
  NodeTags tags_;               // the tags of untagged writes (node/versions.hpp)
  std::map<std::string, std::string, std::less<>> meta_;
};

}  // namespace

std::unique_ptr<Store> open_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace kv
