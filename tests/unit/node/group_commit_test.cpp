// The group committer against a fake `apply` that records its batches: batching, order, results,
// the thread answers come on, and the drain at destruction. (store_test.cpp checks it under RocksDB.)
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "node/group_commit.hpp"

using kv::GroupCommitter;
using kv::StoreStatus;
using kv::WriteOp;
using kv::WriteResult;

namespace {

// An `apply` that records the keys of each batch, answers not_found for a key "absent" and error
// (with the key as the reason) for a key starting with "bad". With `hold_first`, the first batch
// waits for release() after telling entered().
class FakeDisk {
 public:
  explicit FakeDisk(bool hold_first = false) {
    if (!hold_first) release();
  }

  GroupCommitter::Apply apply() {
    return [this](std::span<const WriteOp* const> ops, std::span<WriteResult> results) {
      {
        std::lock_guard lock(mutex_);
        if (ops.size() != results.size()) broken_ = true;
        batches_.emplace_back();
        for (const auto* op : ops) batches_.back().push_back(op->key);
        threads_.push_back(std::this_thread::get_id());
      }
      if (!entered_sent_) {
        entered_sent_ = true;
        entered_.set_value();
        released_future_.wait();
      }
      for (std::size_t i = 0; i < ops.size(); ++i) {
        if (results[i].status != StoreStatus::ok || !results[i].err.empty()) broken_ = true;  // each starts as ok
        if (ops[i]->key == "absent") results[i].status = StoreStatus::not_found;
        if (ops[i]->key.starts_with("bad")) results[i] = {StoreStatus::error, ops[i]->key};
      }
    };
  }
  void wait_entered() { entered_future_.wait(); }
  void release() {
    if (!released_sent_) {
      released_sent_ = true;
      released_.set_value();
    }
  }
  std::vector<std::vector<std::string>> batches() {
    std::lock_guard lock(mutex_);
    return batches_;
  }
  // Whether a batch came with results that did not start as one ok each (checked here: Catch's
  // assertions are for the test's thread).
  bool broken() {
    std::lock_guard lock(mutex_);
    return broken_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::vector<std::string>> batches_;
  std::vector<std::thread::id> threads_;
  bool broken_ = false;
  bool entered_sent_ = false, released_sent_ = false;  // committer thread / test thread only
  std::promise<void> entered_, released_;
  std::future<void> entered_future_ = entered_.get_future();
  std::shared_future<void> released_future_ = released_.get_future().share();
};

WriteOp put(std::string key) { return {WriteOp::Kind::put, std::move(key), "v"}; }

using Batches = std::vector<std::vector<std::string>>;

}  // namespace

TEST_CASE("group commit: ops queued at once share one batch, results in order", "[group_commit]") {
  FakeDisk disk;
  GroupCommitter c(disk.apply());
  std::vector<WriteOp> ops;
  for (const char* k : {"a", "absent", "bad-1", "b"}) ops.push_back(put(k));
  const auto results = c.submit_all_and_wait(std::move(ops));
  REQUIRE(results.size() == 4);
  CHECK(results[0].status == StoreStatus::ok);
  CHECK(results[1].status == StoreStatus::not_found);
  CHECK(results[2].status == StoreStatus::error);
  CHECK(results[2].err == "bad-1");
  CHECK(results[3].status == StoreStatus::ok);
  CHECK(results[3].err.empty());
  CHECK(disk.batches() == Batches{{"a", "absent", "bad-1", "b"}});
  // Counted before the answers go out.
  CHECK(c.commits() == 1);

  CHECK(c.submit_all_and_wait({}).empty());
  CHECK(c.commits() == 1);
  CHECK(c.submit_and_wait(put("bad-2")).err == "bad-2");
  CHECK(c.commits() == 2);
  CHECK_FALSE(disk.broken());
}

TEST_CASE("group commit: writes that arrive during a commit share the next one", "[group_commit]") {
  FakeDisk disk(true);
  GroupCommitter c(disk.apply());
  std::mutex m;
  std::vector<std::string> answered;
  std::vector<std::thread::id> answer_threads;
  std::promise<void> all_done;
  auto done_for = [&](std::string key) {
    return [&, key](WriteResult r) {
      std::lock_guard lock(m);
      answered.push_back(key + (r.status == StoreStatus::ok ? "" : ":" + r.err));
      answer_threads.push_back(std::this_thread::get_id());
      if (answered.size() == 5) all_done.set_value();
    };
  };
  c.submit(put("first"), done_for("first"));
  disk.wait_entered();  // the first commit is under way
  for (const char* k : {"b", "bad-c", "d", "e"}) c.submit(put(k), done_for(k));
  disk.release();
  all_done.get_future().wait();

  CHECK(disk.batches() == Batches{{"first"}, {"b", "bad-c", "d", "e"}});
  CHECK(c.commits() == 2);
  std::lock_guard lock(m);
  CHECK(answered == std::vector<std::string>{"first", "b", "bad-c:bad-c", "d", "e"});
  // Answers come on the committer thread, the one that applied the batches.
  const auto committer = disk.threads().front();
  CHECK(committer != std::this_thread::get_id());
  for (const auto& t : answer_threads) CHECK(t == committer);
  for (const auto& t : disk.threads()) CHECK(t == committer);
}

TEST_CASE("group commit: many threads, every write answered once with its own result", "[group_commit]") {
  FakeDisk disk;
  GroupCommitter c(disk.apply());
  constexpr int kThreads = 4, kEach = 250;
  std::vector<std::thread> threads;
  std::vector<int> wrong(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = (i % 2 ? "bad-" : "ok-") + std::to_string(t) + "-" + std::to_string(i);
        const auto r = c.submit_and_wait(put(key));
        if ((i % 2) != (r.status == StoreStatus::error) || (i % 2 && r.err != key)) ++wrong[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong == std::vector<int>(kThreads, 0));
  std::size_t applied = 0;
  for (const auto& b : disk.batches()) applied += b.size();
  CHECK(applied == std::size_t{kThreads * kEach});
  CHECK(c.commits() == disk.batches().size());
  CHECK_FALSE(disk.broken());
}

TEST_CASE("group commit: destruction commits and answers everything already queued", "[group_commit]") {
  FakeDisk disk(true);
  auto c = std::make_unique<GroupCommitter>(disk.apply());
  std::atomic<int> answered{0};
  c->submit(put("first"), [&](WriteResult) { ++answered; });
  disk.wait_entered();
  for (const char* k : {"b", "c", "d"}) c->submit(put(k), [&](WriteResult) { ++answered; });
  std::thread destroyer([&] { c.reset(); });
  disk.release();
  destroyer.join();
  CHECK(answered.load() == 4);
  CHECK(disk.batches() == Batches{{"first"}, {"b", "c", "d"}});
}
