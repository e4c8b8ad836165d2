// A connection's input bytes, in one contiguous block so that a scanner sees a whole head at once.
// Blocks of a standard size come from a per-thread BlockPool and go back to it whenever the
// connection has nothing buffered, so 10,000 idle keep-alive connections hold no buffer at all; a
// message larger than a block grows its buffer on the heap, which is freed once it has been read.
// Not thread-safe: one connection, one thread.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace kv {

class BlockPool {
 public:
  static constexpr std::size_t kBlockSize = 16 * 1024;
  explicit BlockPool(std::size_t max_free = 256) : max_free_(max_free) {}

  std::unique_ptr<char[]> take() {
    if (free_.empty()) return std::make_unique_for_overwrite<char[]>(kBlockSize);
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(std::unique_ptr<char[]> b) {
    if (free_.size() < max_free_) free_.push_back(std::move(b));
  }
  std::size_t free_blocks() const noexcept { return free_.size(); }

 private:
  std::size_t max_free_;
  std::vector<std::unique_ptr<char[]>> free_;
};

class IoBuffer {
 public:
  std::string_view view() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
  const char* data() const noexcept { return data_.get() + begin_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t capacity() const noexcept { return cap_; }

  // Room for at least `min_free` more bytes after the ones held (moving them to the front of the
  // block, or growing it), returned whole: the place to receive into.
  std::span<char> prepare(BlockPool& pool, std::size_t min_free) {
    if (!data_) {
      data_ = pool.take();
      cap_ = BlockPool::kBlockSize;
    }
    if (cap_ - end_ < min_free && begin_ > 0) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (cap_ - end_ < min_free) {
      std::size_t cap = cap_ * 2;
      while (cap - end_ < min_free) cap *= 2;
      auto grown = std::make_unique_for_overwrite<char[]>(cap);
      std::memcpy(grown.get(), data_.get(), end_);
      if (cap_ == BlockPool::kBlockSize) pool.give(std::move(data_));
      data_ = std::move(grown);
      cap_ = cap;
    }
    return {data_.get() + end_, cap_ - end_};
  }
  void commit(std::size_t n) noexcept { end_ += n; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // While empty, gives the memory back: a standard block to `pool`, a grown one to the heap.
  void release(BlockPool& pool) {
    if (!data_ || !empty()) return;
    if (cap_ == BlockPool::kBlockSize) pool.give(std::move(data_));
    data_.reset();
    cap_ = 0;
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace kv
