// ring-rebalance apply: moves the data of every range whose owner changes from OLD to NEW while the
// cluster serves, then switches every listed proxy to NEW and removes the moved data from the old
// owners. Safe to run again after an interruption: it reads where the proxies stand and goes on.
//
//   0. with replicas, every node of either ring pauses its tombstone purges (node/purge_pause.hpp)
//   1. the proxies hold both rings (dual_write): writes of moving keys reach both owners with one
//      version, reads the old
//   2. each moving range is copied old -> new owner, values and tombstones, newer version wins
//   3. reads of moving keys go to both owners, the newer wins (read_new); writes still reach both
//   4. the proxies drop the old ring (finish), each saving NEW as its ring file
//   5. the old owners delete the moved ranges; every node of NEW purges its tombstones, which no
//      ring change needs any longer; with replicas, the nodes resume their purges
// Each proxy step is acknowledged by every proxy, after its requests on the older ring finished,
// before the next step begins.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "tools/copy.hpp"

namespace kv::tools {

struct ApplyOptions {
  std::string from_path, to_path;
  std::vector<HostPort> proxies;  // at least one
  CopyOptions copy;
  std::chrono::milliseconds timeout{30'000};
  // With nodes that follow a ring: how long a node of NEW that is down is waited for when it comes to
  // adopt NEW (then apply stops, to be run again).
  std::chrono::milliseconds node_wait{30'000};
  std::string token;  // sent to every proxy and node as a bearer token, when set
  bool json = false;      // a JSON summary on stdout
  bool progress_bar = false;  // a redrawn bar on stderr (a terminal) instead of lines
};

// Exit code: 0 done, 1 failed (with the reason on stderr). Throws ConfigError for bad files.
int apply(const ApplyOptions& options);

}  // namespace kv::tools
