// Building a ring's hash trees (node/replica_trees.hpp) from a store that is being written to: how a
// node adopts a new ring in place, without a restart (node/replication.hpp). No sockets.
//
// The trees must end equal to what the store holds, each key's digest counted once. A scan alone
// cannot give that while writes go on: a key read before a write and one read after it differ, and
// the write's change (before -> now, told to the observer after it is stored) may come before or
// after the scan reaches the key. So the builder is told of every change from before the scan
// begins (changed(), from the store's observer), and the scan goes in batches of stored keys:
//   - a change of a key the scan has passed goes straight into the trees (before -> now, as always);
//   - a change of a key not yet passed is noted: its key's last `now`;
//   - after a batch is read, settle() waits until every change stored before the read was told;
//     then, under the builder's lock, each key of the batch's stretch goes in once: as its last noted
//     `now` when it changed since the batch began, else as the scan read it; the scan's cursor moves
//     past the stretch, and the notes of keys beyond it are dropped (the next batch, read after
//     them, sees what they wrote or newer).
// Per key, the changes come in order, each `before` the `now` of the one before, so what goes in for
// a key is what it holds after the last change told before the cursor passed it, and every later
// change starts from there. The notes held at once are the keys changed during one batch.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/shared_slot.hpp"
#include "node/replica_trees.hpp"
#include "node/store.hpp"

namespace kv {

class TreeBuilder {
 public:
  // `trees`: new, empty; filled by build() and, from then on, by changed(). `batch`: keys per scan.
  // `after_read`, for the tests: called after each batch is read, before it goes in (the moment a
  // write may fall between the read and the trees).
  explicit TreeBuilder(ReplicaTrees& trees, std::size_t batch = 10'000, std::function<void()> after_read = {}) noexcept
      : trees_(trees), batch_(batch), after_read_(std::move(after_read)) {}

  // Every change the store makes, from before build() is called (the store observer's changed()).
  void changed(std::string_view key, const Held& before, const Held& now);

  // Scans the whole store into the trees. Returns the keys (values and tombstones) the scan found,
  // or nothing when `stop` was set (checked between batches). Throws StoreError.
  std::optional<std::uint64_t> build(Store& store, const std::atomic<bool>& stop);

 private:
  ReplicaTrees& trees_;
  const std::size_t batch_;
  const std::function<void()> after_read_;
  SpinLock mutex_;  // common/shared_slot.hpp: changed() may be called with every stripe of the store held
  std::string scanned_;  // every stored key up to this one is in the trees ("": none yet)
  bool done_ = false;    // every key is
  std::unordered_map<std::string, Held> noted_;  // keys beyond scanned_ changed since the batch began
};

}  // namespace kv
