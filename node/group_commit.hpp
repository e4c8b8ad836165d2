// Group commit, for a store that fsyncs before acknowledging a write (kvnode --sync): writes that
// arrive while one fsync runs wait together and share the next one, so the rate of acknowledged
// writes is not bounded by the disk's fsyncs per second.
//
// Contract:
// - One committer thread, started by the constructor, is the only caller of `apply`. Each time, it
//   takes every op queued since the last batch and passes them to `apply` as one batch, in
//   submission order, with one WriteResult each (status ok, no error). `apply` must leave in each the
//   result that applying the ops one at a time in that order would give (a delete sees a put earlier
//   in its own batch, and a write's tag is judged against, or made from, the tag an earlier op of
//   the batch stored), and make the batch durable with one write and one fsync.
// - Then the commit is counted, and each op's `done` runs, in submission order, on the committer
//   thread (so whoever sees a result also sees its commit in commits()). A `done` must not block:
//   the next batch waits for it.
// - A store that sends every write of its keys through here has no other writer: a check-then-write
//   in `apply` (reading the tag held, then storing a newer one) cannot race, with no lock.
// - The destructor commits and answers everything already queued, then joins the thread. The owner
//   destroys this before whatever `apply` uses, and submits nothing during or after that.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "node/store.hpp"

namespace kv {

class GroupCommitter {
 public:
  using Apply = std::function<void(std::span<const WriteOp* const> ops, std::span<WriteResult> results)>;
  using Done = std::function<void(WriteResult)>;

  explicit GroupCommitter(Apply apply);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues `op`; `done` gets its result once the batch holding it is durable.
  void submit(WriteOp op, Done done);
  // Blocking forms, for callers on their own threads. Every op of `ops` is queued at once, so they
  // usually share one commit; the result i is that of ops[i].
  std::vector<WriteResult> submit_all_and_wait(std::vector<WriteOp> ops);
  WriteResult submit_and_wait(WriteOp op);

  // Batches committed so far (one fsync each).
  std::uint64_t commits() const noexcept { return commits_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    WriteOp op;
    Done done;
  };
  void commit_loop();

  Apply apply_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Pending> queue_;  // under mutex_
  bool stopping_ = false;       // under mutex_
  std::atomic<std::uint64_t> commits_{0};
  std::thread committer_;  // last: starts once everything it uses exists
};

}  // namespace kv
