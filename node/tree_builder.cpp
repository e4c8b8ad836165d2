#include "node/tree_builder.hpp"

#include <vector>

#include "common/storage_key.hpp"
#include "common/transfer.hpp"

namespace kv {

void TreeBuilder::changed(std::string_view key, const Held& before, const Held& now) {
  if (key.size() < kStorageKeyPrefix || trees_.set_of_hash(read_be64(key)) < 0) return;  // in no tree of these
  std::lock_guard lock(mutex_);
  if (done_ || (!scanned_.empty() && key <= scanned_)) return trees_.changed(key, before, now);
  noted_.insert_or_assign(std::string(key), now);
}

std::optional<std::uint64_t> TreeBuilder::build(Store& store, const std::atomic<bool>& stop) {
  const HashRange all{0, ~std::uint64_t{0}};
  std::string after, err;
  std::uint64_t keys = 0;
  std::vector<Record> records;
  for (;;) {
    if (stop.load(std::memory_order_relaxed)) return std::nullopt;
    ScanBatch batch;
    if (store.scan({&all, 1}, after, batch_, 8 << 20, true, batch, err) != StoreStatus::ok)
      throw StoreError("building the hash trees: " + err);
    if (!parse_records(batch.records, records, err, true)) throw StoreError("building the hash trees: " + err);
    if (after_read_) after_read_();
    store.settle();  // every change stored before the read is told (and noted) now
    const bool last = batch.done || batch.count == 0;
    std::lock_guard lock(mutex_);
    for (const auto& r : records) {
      const auto noted = noted_.find(std::string(r.key));
      const Held held = noted != noted_.end() ? noted->second
                                              : Held{r.tombstone ? Held::Kind::tombstone : Held::Kind::value, r.tag};
      if (noted != noted_.end()) noted_.erase(noted);
      trees_.changed(r.key, {}, held);
    }
    // Keys of the stretch that held nothing when read, changed since.
    for (const auto& [key, held] : noted_)
      if (last || key <= batch.last_key) trees_.changed(key, {}, held);
    noted_.clear();
    keys += records.size();
    if (last) {
      done_ = true;
      return keys;
    }
    scanned_ = after = batch.last_key;
  }
}

}  // namespace kv
