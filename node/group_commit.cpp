// The group committer's queue and thread; the contract is in group_commit.hpp.
#include "node/group_commit.hpp"

#include <utility>

namespace kv {

GroupCommitter::GroupCommitter(Apply apply) : apply_(std::move(apply)), committer_([this] { commit_loop(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  committer_.join();
}

void GroupCommitter::submit(WriteOp op, Done done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(op), std::move(done)});
  }
  wake_.notify_one();
}

std::vector<WriteResult> GroupCommitter::submit_all_and_wait(std::vector<WriteOp> ops) {
  std::vector<WriteResult> results(ops.size());
  if (ops.empty()) return results;
  std::mutex m;
  std::condition_variable cv;
  std::size_t remaining = ops.size();
  {
    // One lock for all: the committer cannot take half of them into a batch.
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < ops.size(); ++i) {
      queue_.push_back({std::move(ops[i]), [&, i](WriteResult r) {
                          std::lock_guard l(m);
                          results[i] = std::move(r);
                          if (--remaining == 0) cv.notify_one();
                        }});
    }
  }
  wake_.notify_one();
  std::unique_lock l(m);
  cv.wait(l, [&] { return remaining == 0; });
  return results;
}

WriteResult GroupCommitter::submit_and_wait(WriteOp op) {
  std::vector<WriteOp> ops;
  ops.push_back(std::move(op));
  return std::move(submit_all_and_wait(std::move(ops))[0]);
}

void GroupCommitter::commit_loop() {
  std::vector<Pending> batch;
  std::vector<const WriteOp*> ops;
  std::vector<WriteResult> results;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to commit
      batch.swap(queue_);
    }
    ops.clear();
    for (const auto& p : batch) ops.push_back(&p.op);
    results.assign(batch.size(), {});
    apply_(ops, results);
    commits_.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    batch.clear();
  }
}

}  // namespace kv
