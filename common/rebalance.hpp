// The rebalance protocol as types: what ring-rebalance, kvproxy's admin listener and kvnode's
// /admin/ endpoints say to each other while a ring changes, written once for all three (and the
// tests). The data formats of the copy (ranges, records) are in transfer.hpp.
//
// A ring change, OLD -> NEW, as every proxy holds it:
//   none        routing by OLD alone (before) or NEW alone (after)
//   dual_write  writes of keys that change owner go to both owners; reads to the old one
//   read_new    reads of those keys go to the new owner; writes still to both
// The steps that move a proxy from one phase to the next are POSTs to its admin listener:
//   begin?from=OLD (body: NEW's YAML)  none -> dual_write
//   read-new?to=NEW                     dual_write -> read_new
//   finish?to=NEW                       read_new -> none, routing by NEW, saved as the ring file
//   abort                               any -> none, routing by OLD
// Each answers once no request that began on an older ring is still in flight.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kv::rebalance {

enum class Phase : std::uint8_t { none, dual_write, read_new };
std::string_view phase_name(Phase p) noexcept;  // "none", "dual_write", "read_new"
std::optional<Phase> parse_phase(std::string_view s) noexcept;

enum class Step : std::uint8_t { begin, read_new, finish, abort };
std::string_view step_name(Step s) noexcept;  // the last segment of its path: "begin", "read-new", ...
std::optional<Step> parse_step(std::string_view s) noexcept;

// ---- kvproxy's admin listener -------------------------------------------------------------------
inline constexpr std::string_view kAdminPrefix = "/admin/";  // kvproxy never forwards these to a node
inline constexpr std::string_view kMigrationPath = "/admin/migration";  // GET: where the proxy stands
inline constexpr std::string_view kStepPrefix = "/admin/migration/";     // POST kStepPrefix + step_name
// The target of a step: begin names the ring it starts from (from=), read-new and finish the ring
// they go to (to=); abort names none.
inline constexpr std::string_view kFromParam = "from", kToParam = "to";
std::string step_target(Step s, std::string_view fingerprint);

// ---- kvnode's admin endpoints (bodies and answers: transfer.hpp) --------------------------------
inline constexpr std::string_view kScanPath = "/admin/scan";      // ?limit=N&max_bytes=B[&after=CURSOR]
inline constexpr std::string_view kCountPath = "/admin/count";    // answer: {"keys": N, "bytes": B}
inline constexpr std::string_view kIngestPath = "/admin/ingest";  // answer: {"written": N, "skipped": M}
inline constexpr std::string_view kDropPath = "/admin/drop";      // ?what=data|tombstones|all
// POST, body: a ring's YAML. A kvnode with --ring adopts it: it writes it to its --ring file and
// adopts it in place, in the background, serving throughout (its hash trees and anti-entropy peers
// follow the ring: node/replication.hpp); its /health names the ring it runs on. Answer
// {"status":"success","adopting":true|false,"restarting":false} (adopting false: it runs on that ring
// already; "restarting" is always false now, kept for rebalancers from when a node started again).
inline constexpr std::string_view kNodeRingPath = "/admin/ring";
// POST ?pause=CHANGE | ?resume=CHANGE: tombstone purges paused for a ring change (node/purge_pause.hpp).
// A pause answers once no purge of the node is under way; it is durable. A resume must name the
// change paused for (409 otherwise). Answer {"status":"success","purges_paused":"CHANGE"|null}.
inline constexpr std::string_view kNodePurgesPath = "/admin/purges";
inline constexpr std::string_view kPauseParam = "pause", kResumeParam = "resume";
inline constexpr std::string_view kLimitParam = "limit", kMaxBytesParam = "max_bytes", kAfterParam = "after";
inline constexpr std::string_view kWhatParam = "what";
// versions=1 on scan and ingest: versioned records (transfer.hpp), tombstones included, newer wins.
inline constexpr std::string_view kVersionsParam = "versions";
enum class Drop : std::uint8_t { data, tombstones, all };
std::string_view drop_name(Drop d) noexcept;
std::optional<Drop> parse_drop(std::string_view s) noexcept;
std::string drop_target(Drop d);
std::string scan_target(std::size_t limit, std::size_t max_bytes, std::string_view after_hex, bool versions = false);
std::string ingest_target(bool versions);

// The answer fields of a scan.
inline constexpr std::string_view kScanCountField = "X-KV-Scan-Count";    // records in this batch
inline constexpr std::string_view kScanDoneField = "X-KV-Scan-Done";      // "1": the ranges are done
inline constexpr std::string_view kScanCursorField = "X-KV-Scan-Cursor";  // hex stored key: the next batch starts after it

// Every delete leaves a tombstone with its version (common/version.hpp), so that the copy of an
// older value is never stored after it; ring-rebalance purges them once a ring change is done.

// ---- one ring change ----------------------------------------------------------------------------
// What the proxies hold, save and report of a ring change; phase none: no change in progress.
struct RingChange {
  Phase phase = Phase::none;
  std::string from;  // fingerprint of the ring it began from (OLD)
  std::string to;    // fingerprint of the ring it goes to (NEW)
  std::string yaml;  // NEW's text as given (saved, and saved as the ring file on finish); may be empty
                     // where only the phase matters
};

// Where a proxy stands: GET /admin/migration's answer.
struct Position {
  std::uint64_t version = 0;  // of the ring in use, counted by the proxy
  std::string fingerprint;    // of the ring in use
  RingChange change;          // without its yaml
  std::string describe() const;  // "ring F, no rebalance" or "rebalance A -> B, phase P"
};
std::string position_json(const Position& p);
// nullopt when `json` is not a position (with the reason in `error`).
std::optional<Position> parse_position(std::string_view json, std::string& error);

// What kvproxy keeps next to its ring file while a change is in progress, so that a restart comes
// back in the same phase: "<ring file>.migration", NEW's text after one header line,
//   # kvring rebalance in progress: phase=dual_write from=<fingerprint> to=<fingerprint>
// The header is a YAML comment, so the file is also NEW's ring.yaml as given.
std::string saved_change_path(std::string_view ring_path);
std::string format_saved_change(const RingChange& c);
// Throws ConfigError("<source>: line 1: ...") when the header is not one this version wrote.
RingChange parse_saved_change(std::string_view text, std::string_view source);

}  // namespace kv::rebalance
