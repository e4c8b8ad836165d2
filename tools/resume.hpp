// Where ring-rebalance apply starts, from where the proxies stand: a pure decision, so that every
// combination of proxy positions is tested without a proxy. Running apply again after it stopped at
// any point goes on from there, because each step it resumes at is safe to take twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/rebalance.hpp"

namespace kv::tools {

// The two rings of this rebalance, as the proxies report them (fingerprints) and as the operator
// named them (files, for messages).
struct RingPair {
  std::string from_fingerprint, from_path;
  std::string to_fingerprint, to_path;
};

// A proxy as it answered GET /admin/migration.
struct ProxyPosition {
  std::string address;  // HOST:PORT of its admin listener
  rebalance::Position position;
};

// The first step this run takes; each later one skips the steps before it.
enum class StartAt {
  clear,     // every proxy on OLD: clear what an aborted run left on the new owners, then begin
  begin,     // some proxies in dual_write, none past it: begin again (a no-op where taken) and copy
  read_new,  // some proxy reads from NEW, which it does only after a finished copy: flip the rest
  cleanup,   // every proxy on NEW: drop the moved ranges from the old owners
};

struct Resume {
  StartAt start = StartAt::clear;
  std::size_t on_old = 0, dual_write = 0, read_new = 0, on_new = 0;  // proxies in each position
  // Not empty: the proxies are not all in positions of this one rebalance, or some are further than
  // others can follow; apply must refuse, with this text, and start nothing.
  std::string refusal;

  bool copied() const { return start >= StartAt::read_new; }  // the copy finished in an earlier run
  std::string resuming_line() const;  // "resuming: 1 proxies on OLD, 1 in dual_write, 0 in read_new, 0 on NEW"
};

// `proxies`: at least one, in the order the operator listed them.
Resume decide_resume(const std::vector<ProxyPosition>& proxies, const RingPair& rings);

// A node's tombstone purges as its /health tells (node/purge_pause.hpp): whether it purges at all
// (not kvnode --keep-tombstones), the ring change they are paused for, and the last one they were
// resumed for ("": none).
struct PurgeState {
  bool purging = false;
  std::string paused, resumed;
};

// The id that a ring change's pause and resume name (POST /admin/purges): "OLD-NEW.G", OLD and NEW
// the rings' fingerprints and G one more than the highest G that any node answering remembers. A
// node paused for a change resumes itself when a peer says it was resumed for that same id, so no
// two changes may share one: with OLD -> NEW, NEW -> OLD, OLD -> NEW again, a node that missed the
// middle change still says "resumed for" the first, which for an id of NEW's fingerprint alone
// would end the third's pause on its peers early. G grows from change to change because each pause
// reaches most nodes of both rings, and consecutive changes share a ring.
// A run again of the same change keeps its id: when a node is paused for OLD-NEW.G with G the
// highest remembered, that is this change, stopped before its end.
std::string change_id(const RingPair& rings, const std::vector<PurgeState>& nodes);
// G of an id made by change_id; 0 for any other (an id from before, a fingerprint alone).
std::uint64_t change_generation(std::string_view id);

}  // namespace kv::tools
