// Anti-entropy between kvnodes (REPLICATION.md, guarantee 6): the hash trees' shape and the endpoints
// a node asks its peers, written once for both sides and the tests.
//
// Each node keeps one hash tree per replica set it belongs to (the sets of its ring, members taken
// without their order): kSegments leaves, leaf s the XOR of the digests of what the node holds for
// the keys of that set whose ring hash starts with s (a digest: XXH3 of the stored key, the kind and
// the tag; nothing held, no digest). A segment is one contiguous range of stored keys. Leaves are
// grouped kFanout to a bucket; a bucket's hash is the XOR of its leaves.
//
// A node pulls: it compares its tree of a set with a peer's, bucket hashes first, then the leaves of
// the buckets that differ, then sends short digests of what it holds in the segments that differ
// and gets back, in the same answer, what the peer holds otherwise there (/replica/diff). It stores them as tagged writes
// (newest tag wins, as /admin/ingest). Each side pulls what it lacks, so nothing moves twice.
// A bucket's counter sum (the sum, mod 2^64, of the tag counters its keys hold) says which side is
// ahead: a node descends into a differing bucket only where the peer's sum is not below its own
// (compared as the signed difference), so a node that is ahead does not list a stale peer's keys to
// find nothing. Both sides skip a bucket only if each sum is below the other: never, so every
// difference is pulled by one side or the other, and then the bucket is equal or turns the other way.
//
//   GET  /replica/tree?set=IDS     200, the kBuckets bucket hashes, then the kBuckets bucket counter
//                                  sums: 8 bytes each, big-endian. With &groups=1 (what the
//                                  exchanger asks first): the kGroups group hashes, then their
//                                  counter sums (groups_of).
//   POST /replica/tree?set=IDS&groups=1   body: group numbers (4 bytes each, ascending, below
//                                  kGroups). 200, per group its kBucketsPerGroup bucket hashes, then
//                                  their counter sums.
//   POST /replica/tree?set=IDS     body: bucket numbers (4 bytes each, big-endian, ascending, at most
//                                  kBuckets). 200, each bucket's kFanout leaf hashes, 8 bytes each;
//                                  with &salt=S (a decimal 64-bit number), each leaf's short_leaf
//                                  under S instead, 2 bytes each (what the exchanger asks: a leaf
//                                  only says whether a segment differs, and a difference a
//                                  collision hides, 1 in 65,536, is found the next round: the
//                                  bucket's 8-byte hash still differs, and the salt is another).
//   POST /replica/digests?set=IDS  body: segment numbers (4 bytes each, ascending, at most
//                                  kMaxSegmentsPerRequest). 200, versioned records (transfer.hpp) of
//                                  every key of the set in those segments, values left out: a value
//                                  record with an empty value, a tombstone as it is.
//   POST /replica/fetch            body: stored keys (4-byte big-endian length, then the key; at most
//                                  kMaxKeysPerFetch). 200, versioned records with their values of what
//                                  the node holds for them (keys that hold nothing are left out).
//   POST /replica/diff?set=IDS&limit=N   what the exchanger uses instead of the two above, in one
//                                  round trip: body, an 8-byte salt, then per segment (ascending, at
//                                  most kMaxSegmentsPerRequest) its gap from the one before (the
//                                  segment number minus the previous one's minus 1; the first's is
//                                  its number) and a count, both as LEB128 varints (1 to 3 bytes
//                                  here, against 8 as two 4-byte numbers), and that many short
//                                  digests (4 bytes each; 2 with &digest_bytes=2, what the
//                                  exchanger sends) of what the asker holds there
//                                  (short_digest of each key's version digest). 200, the
//                                  versioned records with values of every key of the set in those
//                                  segments whose short digest is not among the asker's: what it lacks
//                                  or holds in another version. Whole segments, in order; after a
//                                  segment that brings the records to N (at most kMaxKeysPerFetch) the
//                                  answer stops, and kNextSegmentField names the first segment left
//                                  out. The salt changes every request, so two versions whose short
//                                  digests collide are told apart the next time. With
//                                  &records=compact, the records are compact ones and the answer's
//                                  kRecordsField says so. (With 2 bytes a
//                                  segment of 5 keys hides a differing version 1 time in 13,000,
//                                  until the next round; the asker's digests were most of a
//                                  catch-up's bytes after the records: bench/RESULTS.md.)
// Incarnations (node/incarnation.hpp): every request of an exchange carries the asking node's id and
// the incarnation of its data directory (kNodeIdField, kIncarnationField); GET /replica/tree answers
// with what the asked node had recorded of the asker's incarnation before (kRememberedField: 16 hex
// digits, or "none"), and its own state (kStateField), and records the new one. A serving node pulls
// nothing from a peer that is not serving yet (it holds nothing that a majority of the others lacks).
// A node that is not serving quorums yet (checking or recovering its data) answers /replica/get with
// 503 and kStateField naming its state; it still takes /replica/put and /replica/del.
// Tombstones purged by evidence (node/floors.hpp): a node that found a bucket equal with every peer
// of a set purges the tombstones it holds there: it raises the floors of their segments on itself,
// then has every peer, at the incarnation it had when it showed its tree, raise them and drop the
// same tombstones, then drops its own:
//   GET  /replica/floors           200, every segment floor this node keeps: floor records.
//   POST /replica/purge?set=IDS    with kExpectField: the incarnation the asker saw. Body: versioned
//                                  records (transfer.hpp) of the tombstones, in stored-key order. Each
//                                  segment's floor is raised to the greatest counter among its
//                                  tombstones, durably; then each tombstone is dropped where the key
//                                  still holds exactly it. 200 {"purged":N}; 409 when this node's
//                                  incarnation is another one (its data was lost since: it may not
//                                  hold the tombstones any more), and nothing is changed.
// A floor record: the segment (4 bytes, big-endian; ascending) and its floor (8 bytes, a tag counter
// from 1 to kMaxTagCounter). GET /replica/tree answers with the asked node's own incarnation too
// (kIncarnationField).
// IDS: the set's node ids, ascending, comma-separated. A node that is not in the set, or was started
// without --ring (no trees), answers 404 with a JSON detail; a malformed body 400. The token rules of
// /admin/ apply (common/replica.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/ring_change.hpp"
#include "common/version.hpp"

namespace kv::anti_entropy {

inline constexpr unsigned kSegmentBits = 16;
inline constexpr std::uint32_t kSegments = 1u << kSegmentBits;
inline constexpr std::uint32_t kFanout = 64;
inline constexpr std::uint32_t kBuckets = kSegments / kFanout;
// Buckets grouped for a first comparison: an exchange that finds every group equal moves 512 bytes
// of tree, not 16 kB.
inline constexpr std::uint32_t kGroups = 32;
inline constexpr std::uint32_t kBucketsPerGroup = kBuckets / kGroups;
inline constexpr std::uint32_t kMaxSegmentsPerRequest = 4096;
inline constexpr std::uint32_t kMaxKeysPerFetch = 10'000;

inline constexpr std::string_view kNodeIdField = "X-KV-Node-Id";
inline constexpr std::string_view kIncarnationField = "X-KV-Incarnation";
inline constexpr std::string_view kRememberedField = "X-KV-Remembered";
inline constexpr std::string_view kStateField = "X-KV-State";
inline constexpr std::string_view kNone = "none";
inline constexpr std::string_view kExpectField = "X-KV-Expect-Incarnation";
// On a tree answer: purges are paused on the asked node for the ring change named (node/purge_pause.hpp).
// The asker takes no evidence for that set from the round: every purge would need that node.
inline constexpr std::string_view kPurgesPausedField = "X-KV-Purges-Paused";
// On a tree answer of a node not paused: the last ring change it was resumed for. An asker paused for
// that change missed its resume, and resumes itself: the change is over.
inline constexpr std::string_view kPurgesResumedField = "X-KV-Purges-Resumed";
inline constexpr std::string_view kNextSegmentField = "X-KV-Next-Segment";
// A diff's answer in compact records (transfer.hpp) says so (kCompactRecords), asked for with
// &records=compact; without this field the answer is in versioned records.
inline constexpr std::string_view kRecordsField = "X-KV-Records";
inline constexpr std::string_view kCompactRecords = "compact";

inline constexpr std::string_view kTreePath = "/replica/tree";
inline constexpr std::string_view kDigestsPath = "/replica/digests";
inline constexpr std::string_view kFetchPath = "/replica/fetch";
inline constexpr std::string_view kFloorsPath = "/replica/floors";
inline constexpr std::string_view kDiffPath = "/replica/diff";
inline constexpr std::string_view kPurgePath = "/replica/purge";
inline constexpr std::uint32_t kMaxPurgePerRequest = 20'000;

inline std::uint32_t segment_of(std::uint64_t ring_hash) noexcept {
  return static_cast<std::uint32_t>(ring_hash >> (64 - kSegmentBits));
}
// The ring hashes of segment s: one contiguous range of stored keys.
inline HashRange segment_range(std::uint32_t s) noexcept {
  const unsigned shift = 64 - kSegmentBits;
  return {std::uint64_t{s} << shift, (std::uint64_t{s} << shift) | ((std::uint64_t{1} << shift) - 1)};
}

// Bodies: 4-byte and 8-byte big-endian numbers, and length-prefixed keys.
void append_u32s(std::string& out, const std::vector<std::uint32_t>& v);
// Ascending, each below `bound`, at most `max` of them; false otherwise.
bool parse_u32s(std::string_view body, std::uint32_t bound, std::size_t max, std::vector<std::uint32_t>& out);
void append_u64s(std::string& out, const std::vector<std::uint64_t>& v);
// Exactly `count` numbers; false otherwise.
bool parse_u64s(std::string_view body, std::size_t count, std::vector<std::uint64_t>& out);
void append_u16s(std::string& out, const std::vector<std::uint16_t>& v);
// Exactly `count` 2-byte numbers; false otherwise.
bool parse_u16_list(std::string_view body, std::size_t count, std::vector<std::uint16_t>& out);
void append_key(std::string& out, std::string_view key);

// The groups of a tree (kGroups hashes, then kGroups counter sums) from its kBuckets bucket hashes
// and sums: a group's hash is the XOR of its buckets' hashes, each mixed with its bucket number
// first (so that two buckets that differ alike do not cancel out); its sum, its buckets' sums added.
std::vector<std::uint64_t> groups_of(const std::vector<std::uint64_t>& buckets, const std::vector<std::uint64_t>& sums);

// A version digest (hash_version of a key, its kind and tag) cut to 4 bytes under a salt.
std::uint32_t short_digest(std::uint64_t version_digest, std::uint64_t salt) noexcept;
// The same cut to `bytes` (2 or 4) bytes, as a diff request of that width carries it.
inline std::uint32_t short_digest(std::uint64_t version_digest, std::uint64_t salt, std::size_t bytes) noexcept {
  return bytes == 2 ? short_digest(version_digest, salt) >> 16 : short_digest(version_digest, salt);
}
// A leaf hash cut to 2 bytes under a salt (POST /replica/tree with &salt=).
inline std::uint16_t short_leaf(std::uint64_t leaf, std::uint64_t salt) noexcept {
  return static_cast<std::uint16_t>(short_digest(leaf, salt) >> 16);
}
struct SegmentDigests {
  std::uint32_t segment = 0;
  std::vector<std::uint32_t> digests;  // any order
  friend bool operator==(const SegmentDigests&, const SegmentDigests&) = default;
};
// `digest_bytes`: each digest's width on the wire, 4 or 2 (then each must be below 65,536).
void append_diff_request(std::string& out, std::uint64_t salt, const std::vector<SegmentDigests>& segments,
                         std::size_t digest_bytes = 4);
// Segments ascending, below kSegments, at most kMaxSegmentsPerRequest, each with at most
// kMaxKeysPerFetch digests of `digest_bytes` (4 or 2) each; false otherwise.
bool parse_diff_request(std::string_view body, std::uint64_t& salt, std::vector<SegmentDigests>& out,
                        std::size_t digest_bytes = 4);

struct SegmentFloor {
  std::uint32_t segment = 0;
  std::uint64_t floor = 0;
  friend bool operator==(const SegmentFloor&, const SegmentFloor&) = default;
};
void append_floors(std::string& out, const std::vector<SegmentFloor>& floors);
// Segments ascending and below kSegments, floors from 1 to kMaxTagCounter; false otherwise.
bool parse_floors(std::string_view body, std::vector<SegmentFloor>& out);
// The floors a purge of `tombstones` (stored keys in order, with their tags) raises: per segment,
// the greatest counter.
std::vector<SegmentFloor> floors_of(const std::vector<std::pair<std::string, Tag>>& tombstones);
// Keys of 8 bytes (the ring hash) or more, at most `max` of them; false otherwise. Views into `body`.
bool parse_keys(std::string_view body, std::size_t max, std::vector<std::string_view>& out);

}  // namespace kv::anti_entropy
