#include "node/sync_api.hpp"

#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <charconv>

#include "common/key.hpp"
#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "common/version.hpp"
#include "http/policy.hpp"

namespace kv {

namespace ae = anti_entropy;
namespace beast = boost::beast;
using beast::http::status;
using beast::http::verb;

namespace {

void binary_answer(http::StringResponse& res, std::string body) {
  res.result(status::ok);
  res.set(beast::http::field::content_type, "application/octet-stream");
  res.body() = std::move(body);
}

}  // namespace

bool SyncApi::serves(std::string_view path) noexcept {
  return path == ae::kTreePath || path == ae::kDigestsPath || path == ae::kFetchPath || path == ae::kFloorsPath ||
         path == ae::kPurgePath || path == ae::kDiffPath;
}

void SyncApi::remember_asker(const http::StringRequest& req, http::StringResponse& res) {
  const auto field = [&](std::string_view name) {
    const auto it = req.find(name);
    return it == req.end() ? std::string_view() : std::string_view(it->value().data(), it->value().size());
  };
  const auto peer = field(ae::kNodeIdField), incarnation = field(ae::kIncarnationField);
  std::uint64_t ignored = 0;
  const int node = trees_->ring().find_node(peer);
  // Only a node that shares a set with this one, with a well-formed id, is recorded.
  const auto& peers = trees_->peers();
  if (!incarnation_ || node < 0 || !std::binary_search(peers.begin(), peers.end(), static_cast<std::uint32_t>(node)) ||
      !parse_hex64(incarnation, ignored))
    return;
  res.set(ae::kIncarnationField, incarnation_->id());
  const std::string before = incarnation_->saw_peer(peer, incarnation);
  res.set(ae::kRememberedField, before.empty() ? ae::kNone : std::string_view(before));
  res.set(ae::kStateField, state_name(incarnation_->state()));
}

bool SyncApi::digests(Store& store, const ReplicaTrees& trees, std::size_t set, const std::vector<std::uint32_t>& segments,
                      std::string& out, std::string& err) {
  std::vector<HashRange> ranges;
  for (auto s : segments) {
    const HashRange r = ae::segment_range(s);
    if (!ranges.empty() && ranges.back().hi + 1 == r.lo) ranges.back().hi = r.hi;  // adjacent: one range
    else ranges.push_back(r);
  }
  std::string after;
  std::vector<Record> records;
  for (;;) {
    ScanBatch batch;
    if (store.scan(ranges, after, 10'000, 8 << 20, true, batch, err) != StoreStatus::ok) return false;
    if (!parse_records(batch.records, records, err, true)) return false;
    for (const auto& r : records) {
      if (trees.set_of_hash(read_be64(r.key)) != static_cast<int>(set)) continue;
      append_versioned_record(out, {r.key, {}, r.tag, r.tombstone});
    }
    if (batch.done || batch.count == 0) return true;
    after = batch.last_key;
  }
}

bool SyncApi::diff(Store& store, const ReplicaTrees& trees, std::size_t set, std::uint64_t salt,
                   const std::vector<ae::SegmentDigests>& asked, std::size_t limit, std::string& out, std::int64_t& next,
                   std::string& err, std::size_t digest_bytes, bool compact) {
  next = -1;
  std::size_t records = 0;
  std::vector<Record> batch_records;
  std::vector<std::uint32_t> theirs;
  std::vector<HashRange> ranges;
  std::size_t at = 0;  // the asked segment being answered
  auto enter = [&](std::size_t i) {
    at = i;
    theirs = asked[i].digests;
    std::sort(theirs.begin(), theirs.end());
  };
  // Done with segment `at`: true when the answer ends there (then `next` names the one after it).
  auto full_after = [&] {
    if (records < limit || at + 1 >= asked.size()) return false;
    next = asked[at + 1].segment;
    return true;
  };
  // One scan (one iterator: node/rocksdb_scan.hpp) per run of segments asked in ascending order, the
  // exchanger's whole request: a scan per segment cost a rebuild's peers about 3.5 us of CPU per key
  // answered (segments hold a few keys each). Its records come in stored-key order, so segment by segment.
  for (std::size_t first = 0; first < asked.size();) {
    std::size_t end = first + 1;
    while (end < asked.size() && asked[end - 1].segment < asked[end].segment) ++end;
    ranges.clear();
    for (std::size_t i = first; i < end; ++i) ranges.push_back(ae::segment_range(asked[i].segment));
    enter(first);
    std::string after;
    for (;;) {
      // No more keys read than the answer can still take (and the rest of a segment): every one is
      // read with its value.
      const std::size_t want = std::min<std::size_t>(10'000, (limit > records ? limit - records : 0) + 64);
      ScanBatch batch;
      if (store.scan(ranges, after, want, 8 << 20, true, batch, err) != StoreStatus::ok) return false;
      if (!parse_records(batch.records, batch_records, err, true)) return false;
      for (const auto& r : batch_records) {
        for (const std::uint32_t segment = ae::segment_of(read_be64(r.key)); asked[at].segment < segment;) {
          if (full_after()) return true;
          enter(at + 1);
        }
        if (trees.set_of_hash(read_be64(r.key)) != static_cast<int>(set)) continue;
        if (std::binary_search(theirs.begin(), theirs.end(), ae::short_digest(version_digest(r), salt, digest_bytes))) continue;
        compact ? append_compact_record(out, r) : append_versioned_record(out, r);
        ++records;
      }
      if (batch.done || batch.count == 0) break;
      after = batch.last_key;
    }
    for (;;) {  // the run's segments after its last key
      if (full_after()) return true;
      if (at + 1 >= end) break;
      enter(at + 1);
    }
    first = end;
  }
  return true;
}

void SyncApi::handle(const http::StringRequest& req, http::StringResponse& res) {
  const auto target = std::string_view(req.target().data(), req.target().size());
  const auto path = target_path(target);
  const std::string_view body(req.body().data(), req.body().size());
  const bool get_tree = path == ae::kTreePath && (req.method() == verb::get || req.method() == verb::head);
  const bool get_floors = path == ae::kFloorsPath && (req.method() == verb::get || req.method() == verb::head);
  if (!get_tree && !get_floors &&
      !http::allow_method(res, req.method(), verb::post,
                          path == ae::kTreePath ? "GET, HEAD, POST" : path == ae::kFloorsPath ? "GET, HEAD" : "POST"))
    return;
  if (!trees_)
    return http::error_answer(res, status::not_found,
                              "anti-entropy is off on this node: it keeps hash trees only when started with --ring "
                              "on a ring with replicas of 2 or more");
  Floors* floors = trees_->floors();
  if (get_floors) {
    std::string out;
    if (floors) ae::append_floors(out, floors->all());
    return binary_answer(res, std::move(out));
  }
  if (path == ae::kFetchPath) {
    std::vector<std::string_view> keys;
    if (!ae::parse_keys(body, ae::kMaxKeysPerFetch, keys))
      return http::error_answer(res, status::bad_request,
                                "body: expected stored keys (4-byte length, then at least 8 bytes), at most " +
                                    std::to_string(ae::kMaxKeysPerFetch));
    std::string out, value, err;
    for (auto key : keys) {
      Tag tag;
      bool tombstone = false;
      const auto st = store_.get_versioned(key, value, tag, tombstone, err);
      if (st == StoreStatus::error)
        return http::error_answer(res, status::internal_server_error, "Storage read failed: " + err);
      if (st == StoreStatus::ok) append_versioned_record(out, {key, value, tag, false});
      else if (tombstone) append_versioned_record(out, {key, {}, tag, true});
    }
    return binary_answer(res, std::move(out));
  }

  std::string name;
  if (!percent_decode(query_value(target, "set"), name) || name.empty())
    return http::error_answer(res, status::bad_request, "set: expected the set's node ids, ascending, comma-separated");
  const int set = trees_->find(name);
  if (set < 0) return http::error_answer(res, status::not_found, "this node is in no replica set '" + name + "'");
  const auto index = static_cast<std::size_t>(set);

  if (path == ae::kPurgePath) {
    std::vector<Record> records;
    std::string err;
    std::vector<std::pair<std::string, Tag>> tombstones;
    const bool parsed = parse_records(body, records, err, true);
    for (const auto& r : records) {
      if (!r.tombstone || r.tag.none() || trees_->set_of_hash(read_be64(r.key)) != set ||
          (!tombstones.empty() && r.key <= tombstones.back().first)) {
        err = "a record that is not a tombstone of the set, tagged, in stored-key order";
        break;
      }
      tombstones.emplace_back(std::string(r.key), r.tag);
    }
    if (!parsed || tombstones.size() != records.size() || records.size() > ae::kMaxPurgePerRequest)
      return http::error_answer(res, status::bad_request,
                                "body: expected versioned tombstone records of the set's keys, in stored-key order, at "
                                "most " + std::to_string(ae::kMaxPurgePerRequest) + ": " +
                                    (records.size() > ae::kMaxPurgePerRequest ? std::string("too many") : err));
    const auto expect = req.find(ae::kExpectField);
    if (expect == req.end())
      return http::error_answer(res, status::bad_request,
                                std::string(ae::kExpectField) + ": required (the incarnation that showed the evidence)");
    const std::string_view expected(expect->value().data(), expect->value().size());
    if (!incarnation_ || !floors || expected != incarnation_->id())
      return http::error_answer(res, status::conflict,
                                "this node's incarnation is " + (incarnation_ ? incarnation_->id() : std::string("none")) +
                                    ", not " + std::string(expected) +
                                    ": its data was lost since, and it may not hold the tombstones; purge nothing");
    // In a turn: a ring change's pause waits for this purge, and refuses the ones after it (503: the
    // asker keeps its purge and its tombstones, and tries again once the change is over).
    PurgePause* pause = trees_->purge_pause();
    const auto turn = pause ? pause->enter() : PurgePause::Turn();
    if (pause && !turn)
      return http::error_answer(res, status::service_unavailable,
                                "tombstone purges are paused on this node for the ring change " + pause->paused() +
                                    " (ring-rebalance apply): purge nothing until it ends");
    try {
      floors->raise(ae::floors_of(tombstones));  // durably, before any tombstone goes
    } catch (const StoreError& e) {
      return http::error_answer(res, status::internal_server_error, std::string("Storage write failed: ") + e.what());
    }
    std::size_t purged = 0;
    if (store_.purge_tombstones(tombstones, purged, err) != StoreStatus::ok)
      return http::error_answer(res, status::internal_server_error, "Storage write failed: " + err);
    floors->count_purged(purged);
    return http::json_answer(res, status::ok, "{\"purged\":" + std::to_string(purged) + "}");
  }
  const auto groups = query_value(target, "groups");
  if (path == ae::kTreePath && !groups.empty() && groups != "1")
    return http::error_answer(res, status::bad_request, "groups: expected 1 (the tree by groups of buckets), or nothing");
  if (get_tree) {
    std::string out;
    const auto buckets = trees_->buckets(index);
    const auto sums = trees_->counter_sums(index);
    if (groups.empty()) {
      ae::append_u64s(out, buckets);
      ae::append_u64s(out, sums);
    } else {
      ae::append_u64s(out, ae::groups_of(buckets, sums));
    }
    binary_answer(res, std::move(out));
    if (const PurgePause* pause = trees_->purge_pause()) {
      if (auto change = pause->paused(); !change.empty()) res.set(ae::kPurgesPausedField, change);
      else if (auto over = pause->resumed(); !over.empty()) res.set(ae::kPurgesResumedField, over);
    }
    return remember_asker(req, res);
  }
  if (path == ae::kDiffPath) {
    std::uint64_t salt = 0;
    std::vector<ae::SegmentDigests> asked;
    std::size_t digest_bytes = 4;
    if (const auto text = query_value(target, "digest_bytes"); !text.empty()) {
      if (text != "2" && text != "4")
        return http::error_answer(res, status::bad_request, "digest_bytes: expected 2 or 4 (the default)");
      digest_bytes = text == "2" ? 2 : 4;
    }
    const auto format = query_value(target, "records");
    if (!format.empty() && format != ae::kCompactRecords)
      return http::error_answer(res, status::bad_request, "records: expected compact, or nothing (versioned records)");
    if (!ae::parse_diff_request(body, salt, asked, digest_bytes))
      return http::error_answer(res, status::bad_request,
                                "body: expected an 8-byte salt, then per segment (ascending, below " +
                                    std::to_string(ae::kSegments) + ", at most " +
                                    std::to_string(ae::kMaxSegmentsPerRequest) +
                                    ") its gap from the one before and a count, both LEB128 varints, and that many " +
                                    std::to_string(digest_bytes) + "-byte digests (at most " +
                                    std::to_string(ae::kMaxKeysPerFetch) + ")");
    std::size_t limit = ae::kMaxKeysPerFetch;
    if (const auto text = query_value(target, "limit"); !text.empty()) {
      std::uint64_t n = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size() || n == 0 || n > ae::kMaxKeysPerFetch)
        return http::error_answer(res, status::bad_request,
                                  "limit: expected records per answer, 1 to " + std::to_string(ae::kMaxKeysPerFetch));
      limit = n;
    }
    std::string out, err;
    std::int64_t next = -1;
    if (!diff(store_, *trees_, index, salt, asked, limit, out, next, err, digest_bytes, !format.empty()))
      return http::error_answer(res, status::internal_server_error, "Storage read failed: " + err);
    binary_answer(res, std::move(out));
    if (!format.empty()) res.set(ae::kRecordsField, ae::kCompactRecords);
    if (next >= 0) res.set(ae::kNextSegmentField, std::to_string(next));
    return;
  }
  std::vector<std::uint32_t> numbers;
  if (path == ae::kTreePath && !groups.empty()) {
    if (!ae::parse_u32s(body, ae::kGroups, ae::kGroups, numbers))
      return http::error_answer(res, status::bad_request,
                                "body: expected group numbers below " + std::to_string(ae::kGroups) +
                                    ", 4 bytes each, ascending");
    const auto buckets = trees_->buckets(index);
    const auto sums = trees_->counter_sums(index);
    std::vector<std::uint64_t> out_numbers;
    out_numbers.reserve(numbers.size() * 2 * ae::kBucketsPerGroup);
    for (const auto g : numbers) {
      const auto first = static_cast<std::ptrdiff_t>(g * ae::kBucketsPerGroup);
      out_numbers.insert(out_numbers.end(), buckets.begin() + first, buckets.begin() + first + ae::kBucketsPerGroup);
      out_numbers.insert(out_numbers.end(), sums.begin() + first, sums.begin() + first + ae::kBucketsPerGroup);
    }
    std::string out;
    ae::append_u64s(out, out_numbers);
    return binary_answer(res, std::move(out));
  }
  if (path == ae::kTreePath) {
    if (!ae::parse_u32s(body, ae::kBuckets, ae::kBuckets, numbers))
      return http::error_answer(res, status::bad_request,
                                "body: expected bucket numbers below " + std::to_string(ae::kBuckets) +
                                    ", 4 bytes each, ascending");
    std::vector<std::uint64_t> leaves;
    leaves.reserve(numbers.size() * ae::kFanout);
    for (auto b : numbers) trees_->append_leaves(index, b, leaves);
    std::string out;
    if (const auto salt_text = query_value(target, "salt"); !salt_text.empty()) {
      std::uint64_t salt = 0;
      const auto [end, ec] = std::from_chars(salt_text.data(), salt_text.data() + salt_text.size(), salt);
      if (ec != std::errc() || end != salt_text.data() + salt_text.size())
        return http::error_answer(res, status::bad_request, "salt: expected a decimal number below 2^64");
      std::vector<std::uint16_t> short_leaves;
      short_leaves.reserve(leaves.size());
      for (auto l : leaves) short_leaves.push_back(ae::short_leaf(l, salt));
      ae::append_u16s(out, short_leaves);
    } else {
      ae::append_u64s(out, leaves);
    }
    return binary_answer(res, std::move(out));
  }
  if (!ae::parse_u32s(body, ae::kSegments, ae::kMaxSegmentsPerRequest, numbers))
    return http::error_answer(res, status::bad_request,
                              "body: expected segment numbers below " + std::to_string(ae::kSegments) +
                                  ", 4 bytes each, ascending, at most " + std::to_string(ae::kMaxSegmentsPerRequest));
  std::string out, err;
  if (!digests(store_, *trees_, index, numbers, out, err))
    return http::error_answer(res, status::internal_server_error, "Storage read failed: " + err);
  binary_answer(res, std::move(out));
}

}  // namespace kv
