#include <map>
#include <mutex>
#include <shared_mutex>

#include "store.hpp"

namespace kv {
namespace {

// Ordered like RocksDB, so arc scans work the same on a cache node. Nothing here survives a restart.
class MemoryStore final : public Store {
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
    auto it = map_.find(key);
    if (it == map_.end()) map_.emplace(std::string(key), std::string(value));
    else it->second.assign(value);
    return StoreStatus::ok;
  }

  StoreStatus del(std::string_view key, std::string&) override {
    std::unique_lock lock(mutex_);
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

 private:
  std::shared_mutex mutex_;
  std::map<std::string, std::string, std::less<>> map_;
};

}  // namespace

std::unique_ptr<Store> open_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace kv
