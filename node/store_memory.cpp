// The memory engine (--engine memory): a cache node, and the store the unit tests and the fuzzer
// drive the Api over.
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>

#include "common/storage_key.hpp"
#include "node/store.hpp"

namespace kv {
namespace {

// Ordered like RocksDB, so arc scans work the same on a cache node. Nothing here survives a restart.
// One lock over both maps: every operation is atomic.
class MemoryStore final : public Store {
  using Map = std::map<std::string, std::string, std::less<>>;

 public:
  StoreStatus get(std::string_view key, std::string& value, std::string&) override {
    std::shared_lock lock(mutex_);
    auto it = map_.find(key);
    if (it == map_.end()) return StoreStatus::not_found;
    value = it->second;
    return StoreStatus::ok;
  }

  StoreStatus put(std::string_view key, std::string_view value, std::string&) override {
    std::unique_lock lock(mutex_);
    put_locked(key, value);
    return StoreStatus::ok;
  }

  StoreStatus del(std::string_view key, bool tombstone, std::string&) override {
    std::unique_lock lock(mutex_);
    if (tombstone) tombs_.emplace(key);
    auto it = map_.find(key);
    if (it == map_.end()) return StoreStatus::not_found;
    map_.erase(it);
    return StoreStatus::ok;
  }

  std::uint64_t key_count() override {
    std::shared_lock lock(mutex_);
    return map_.size();
  }

  std::string_view engine() const noexcept override { return "memory"; }
  void flush() override {}

  StoreStatus scan(std::span<const HashRange> ranges, std::string_view after, std::size_t limit, std::size_t max_bytes,
                   ScanBatch& out, std::string&) override {
    std::shared_lock lock(mutex_);
    for (const auto& r : ranges) {
      auto it = map_.lower_bound(range_begin(r));
      if (!after.empty() && read_be64(after) >= r.lo) it = map_.upper_bound(after);
      for (; it != map_.end() && read_be64(it->first) <= r.hi; ++it) {
        if (out.count == limit || (out.count > 0 && out.records.size() >= max_bytes)) return StoreStatus::ok;
        append_record(out.records, it->first, it->second);
        out.last_key = it->first;
        ++out.count;
      }
    }
    out.done = true;
    return StoreStatus::ok;
  }

  StoreStatus count(std::span<const HashRange> ranges, std::uint64_t& n, std::string&) override {
    std::shared_lock lock(mutex_);
    n = 0;
    for (const auto& r : ranges)
      for (auto it = map_.lower_bound(range_begin(r)); it != map_.end() && read_be64(it->first) <= r.hi; ++it) ++n;
    return StoreStatus::ok;
  }

  StoreStatus ingest(std::span<const Record> records, std::size_t& written, std::string&) override {
    std::unique_lock lock(mutex_);
    written = 0;
    for (const auto& r : records) {
      if (map_.find(r.key) != map_.end() || tombs_.find(r.key) != tombs_.end()) continue;
      put_locked(r.key, r.value);
      ++written;
    }
    return StoreStatus::ok;
  }

  StoreStatus drop(std::span<const HashRange> ranges, bool data, bool tombstones, std::string&) override {
    std::unique_lock lock(mutex_);
    for (const auto& r : ranges) {
      if (data) map_.erase(map_.lower_bound(range_begin(r)), end_of(map_, r));
      if (tombstones) tombs_.erase(tombs_.lower_bound(range_begin(r)), end_of(tombs_, r));
    }
    return StoreStatus::ok;
  }

  std::uint64_t tombstone_count() override {
    std::shared_lock lock(mutex_);
    return tombs_.size();
  }

 private:
  static std::string range_begin(const HashRange& r) {
    std::string k;
    append_be64(k, r.lo);
    return k;
  }
  // The first element past the range.
  template <class C>
  static typename C::iterator end_of(C& c, const HashRange& r) {
    auto it = c.lower_bound(range_begin(r));
    while (it != c.end() && read_be64(key_of(*it)) <= r.hi) ++it;
    return it;
  }
  static std::string_view key_of(const Map::value_type& v) { return v.first; }
  static std::string_view key_of(const std::string& v) { return v; }

  void put_locked(std::string_view key, std::string_view value) {
    auto it = map_.find(key);
    if (it == map_.end()) map_.emplace(std::string(key), std::string(value));
    else it->second.assign(value);
  }

  std::shared_mutex mutex_;
  Map map_;
  std::set<std::string, std::less<>> tombs_;
};

}  // namespace

std::unique_ptr<Store> open_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace kv
