#include "common/io_buffer.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace {

void put(kv::IoBuffer& b, kv::BlockPool& pool, std::string_view s) {
  auto space = b.prepare(pool, s.size());
  REQUIRE(space.size() >= s.size());
  std::memcpy(space.data(), s.data(), s.size());
  b.commit(s.size());
}

}  // namespace

TEST_CASE("a buffer takes a block only while it holds bytes", "[io_buffer]") {
  kv::BlockPool pool;
  kv::IoBuffer b;
  CHECK(b.capacity() == 0);
  put(b, pool, "GET / HTTP/1.1\r\n\r\n");
  CHECK(b.capacity() == kv::BlockPool::kBlockSize);
  CHECK(b.view() == "GET / HTTP/1.1\r\n\r\n");
  b.release(pool);  // not empty: kept
  CHECK(b.capacity() == kv::BlockPool::kBlockSize);
  b.consume(b.size());
  CHECK(b.empty());
  b.release(pool);
  CHECK(b.capacity() == 0);
  CHECK(pool.free_blocks() == 1);
  kv::IoBuffer other;
  put(other, pool, "x");  // the same block, from the pool
  CHECK(pool.free_blocks() == 0);
}

TEST_CASE("what is left moves to the front before the buffer grows", "[io_buffer]") {
  kv::BlockPool pool;
  kv::IoBuffer b;
  const std::string first(10000, 'a');
  put(b, pool, first);
  b.consume(9000);
  const std::string second(10000, 'b');
  put(b, pool, second);  // 1000 + 10000 fit in one block once moved to the front
  CHECK(b.capacity() == kv::BlockPool::kBlockSize);
  CHECK(b.view() == std::string(1000, 'a') + second);
}

TEST_CASE("a message larger than a block grows the buffer, which goes to the heap when empty", "[io_buffer]") {
  kv::BlockPool pool;
  kv::IoBuffer b;
  put(b, pool, std::string(1000, 'h'));
  const std::string big(100'000, 'v');
  put(b, pool, big);
  CHECK(b.capacity() >= 101'000);
  CHECK(b.view() == std::string(1000, 'h') + big);
  CHECK(pool.free_blocks() == 1);  // the block it outgrew went back
  b.consume(b.size());
  b.release(pool);
  CHECK(b.capacity() == 0);
  CHECK(pool.free_blocks() == 1);  // the grown buffer was freed, not pooled
}

TEST_CASE("a pool keeps no more free blocks than it was told", "[io_buffer]") {
  kv::BlockPool pool(2);
  for (int i = 0; i < 5; ++i) pool.give(pool.take());
  CHECK(pool.free_blocks() == 1);
  auto a = pool.take(), b = pool.take(), c = pool.take();
  pool.give(std::move(a));
  pool.give(std::move(b));
  pool.give(std::move(c));
  CHECK(pool.free_blocks() == 2);
}
