// Per-key versions: every value and every delete (a tombstone) a node stores carries a tag that
// orders all writes of one key, and a node applies a write only if its tag is newer than the one it
// holds (in one atomic step per key). Written once here for kvnode, kvproxy, ring-rebalance and the
// tests: the tag, how one is made, and the node-to-node fields that carry it. Clients never see a
// tag: kvproxy drops these fields from what clients send, and from what it relays back.
//
// A tag is (counter, writer), compared counter first. A new write's tag is one counter above the
// newest the writer has seen for the key (or kvproxy's clock in milliseconds, when that is larger); the writer part is unique per write (a random per-process
// half and a per-process sequence), so two writes never share a tag, even two of one key at once
// from one process. Correctness never depends on a clock: kvproxy's clock only raises counters.
//
// Who makes the tag:
//   - a node, for a write that arrives without one (the common case: one owner per key, the owner
//     orders the writes of its keys), from the tag it holds;
//   - kvproxy, for a write that goes to two nodes (a key moving in a ring change): it asks both for
//     the tag they hold (a versioned GET), takes the newest plus one, and sends that one tag to both.
//
// The fields (node-to-node only):
//   request  X-KV-Version: <tag>    on PUT/DELETE: store with this tag; a node that holds a newer one
//                                   (or this one) leaves the key as it is and still answers success
//                                   (the write is ordered before the newer one: superseded)
//   request  X-KV-Versioned: 1      on any client request: answer with the fields below
//   answer   X-KV-Version: <tag>    the tag the node holds for the key after the request ("0.0" when
//                                   it holds nothing)
//   answer   X-KV-Tombstone: 1      what the node holds is a tombstone (a delete); the answer is 404
//   answer   X-KV-Applied: 1|0      a write with a tag: stored (1), or superseded (0)
// A tagged delete answers 200 when the node held a value before it, 404 otherwise, whether or not
// it was superseded: what a read made within the delete found. Two writes with one tag and different
// values are a bug, not a tie: the node refuses the second with 409 and counts it.
//
// Tag{} ("0.0") is the tag of data stored before versions and of plain (unversioned) copies: it
// carries no order and is not unique. A write tagged "0.0" goes in only where the node holds nothing
// at all (put-if-absent), and two writes of Tag{} never conflict: the one held stays.
#pragma once

#include <atomic>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kv {

struct Tag {
  std::uint64_t counter = 0;
  std::uint64_t writer = 0;

  bool none() const noexcept { return counter == 0 && writer == 0; }
  friend constexpr auto operator<=>(const Tag&, const Tag&) = default;
};

// Counters above this are refused (a tag from a broken or hostile sender must not make every later
// counter overflow).
inline constexpr std::uint64_t kMaxTagCounter = std::uint64_t{1} << 62;

// "<counter>.<writer, 16 hex digits>": "12.9f3a00c100000007"; the empty tag is "0.0".
std::string format_tag(const Tag& t);
// Strict: decimal counter <= kMaxTagCounter, a dot, 1 to 16 hex digits. nullopt otherwise.
std::optional<Tag> parse_tag(std::string_view s) noexcept;

// Makes the tags of one process's writes. Thread-safe.
class TagMaker {
 public:
  // `writer_half`: the random per-process upper 32 bits (tests pass their own).
  explicit TagMaker(std::uint32_t writer_half);
  TagMaker();  // a random writer half
  // A tag newer than `newest_seen`, never made before by any maker (up to 2^32 per process). Its
  // counter is at least `floor` too: kvproxy passes its clock in milliseconds, so that tags run
  // roughly in time order across writers (never needed for correctness: a clock behind only means
  // seen + 1, and one ahead only a larger counter).
  Tag next(const Tag& newest_seen, std::uint64_t floor = 0) noexcept;
  std::uint32_t writer_half() const noexcept { return half_; }

 private:
  std::uint32_t half_;
  std::atomic<std::uint32_t> seq_{0};
};

namespace version {
inline constexpr std::string_view kField = "X-KV-Version";
inline constexpr std::string_view kFieldLower = "x-kv-version";
inline constexpr std::string_view kVersionedField = "X-KV-Versioned";
inline constexpr std::string_view kVersionedFieldLower = "x-kv-versioned";
inline constexpr std::string_view kVersionedLine = "X-KV-Versioned: 1\r\n";
inline constexpr std::string_view kTombstoneField = "X-KV-Tombstone";
inline constexpr std::string_view kTombstoneFieldLower = "x-kv-tombstone";
inline constexpr std::string_view kAppliedField = "X-KV-Applied";
inline constexpr std::string_view kAppliedFieldLower = "x-kv-applied";
// "X-KV-Version: <tag>\r\n", for a relayed request.
std::string version_line(const Tag& t);
}  // namespace version

}  // namespace kv
