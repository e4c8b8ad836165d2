// common/version.hpp: tags in text and back, their order, and the tags a TagMaker makes.
#include <catch2/catch.hpp>

#include <set>
#include <thread>
#include <vector>

#include "common/version.hpp"

using kv::Tag;
using kv::TagMaker;

TEST_CASE("a tag in text and back", "[version]") {
  CHECK(kv::format_tag({}) == "0.0");
  CHECK(kv::format_tag({12, 0x9f3a00c100000007}) == "12.9f3a00c100000007");
  CHECK(kv::parse_tag("12.9f3a00c100000007") == Tag{12, 0x9f3a00c100000007});
  CHECK(kv::parse_tag("0.0") == Tag{});
  CHECK(kv::parse_tag("7.A") == Tag{7, 10});
  CHECK(kv::parse_tag(kv::format_tag({kv::kMaxTagCounter, ~0ull})) == Tag{kv::kMaxTagCounter, ~0ull});
  for (const char* bad : {"", ".", "1.", ".1", "1", "x.1", "1.x", "-1.1", "+1.1", "1.1.1", "1.00000000000000001",
                          " 1.1", "1.1 ", "4611686018427387905.1", "99999999999999999999.1"})
    CHECK_FALSE(kv::parse_tag(bad));
}

TEST_CASE("tags order by counter, then writer", "[version]") {
  CHECK(Tag{1, 9} < Tag{2, 0});
  CHECK(Tag{2, 1} < Tag{2, 2});
  CHECK(Tag{} < Tag{0, 1});
  CHECK(Tag{}.none());
  CHECK_FALSE(Tag{0, 1}.none());
}

TEST_CASE("a TagMaker makes tags newer than what it was shown, each unique", "[version]") {
  TagMaker a(0x1234), b(0x5678);
  const Tag seen{41, 0xffffffffffffffff};
  const Tag t1 = a.next(seen), t2 = a.next(seen), t3 = b.next(seen);
  CHECK(t1 > seen);
  CHECK(t1.counter == 42);
  CHECK(t1 != t2);
  CHECK(t1 != t3);
  CHECK(t1.writer >> 32 == 0x1234);
  CHECK(t3.writer >> 32 == 0x5678);
  CHECK(TagMaker().writer_half() != 0);

  // A clock floor (kvproxy's milliseconds) raises the counter, never lowers it below seen + 1.
  CHECK(a.next(seen, 1'000).counter == 1'000);
  CHECK(a.next(seen, 7).counter == 42);  // a clock far behind: seen + 1 all the same
  CHECK(a.next({1'000, 0}, 1'000).counter == 1'001);
  CHECK(a.next({}, ~std::uint64_t{0}).counter == kv::kMaxTagCounter);  // never above what nodes take

  // From many threads at once, one key: never the same tag twice.
  TagMaker shared(7);
  std::vector<std::vector<Tag>> made(4);
  std::vector<std::thread> threads;
  for (auto& out : made)
    threads.emplace_back([&shared, &out] {
      for (int i = 0; i < 5000; ++i) out.push_back(shared.next({}));
    });
  for (auto& t : threads) t.join();
  std::set<Tag> all;
  for (const auto& v : made) all.insert(v.begin(), v.end());
  CHECK(all.size() == 20000);
}

TEST_CASE("the node-to-node version field as a relayed request carries it", "[version]") {
  CHECK(kv::version::version_line({3, 0xab}) == "X-KV-Version: 3.00000000000000ab\r\n");
}
