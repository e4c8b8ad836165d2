// The copy step of ring-rebalance apply: every key of every flow's ranges, values and tombstones with
// their versions, read from its old owner in batches and stored on its new owner where newer than
// what it holds. Run once every proxy is in dual_write: what a client wrote to both owners meanwhile
// wins over the copy of anything older, and what only the old owner took before (a write or a delete
// through a proxy not yet in dual_write) wins over an older dual write.
#pragma once

#include <cstdint>
#include <vector>

#include "tools/admin_client.hpp"
#include "tools/flows.hpp"
#include "tools/log.hpp"
#include "tools/progress.hpp"

namespace kv::tools {

struct CopyOptions {
  std::size_t batch_keys = 1000;
  std::size_t batch_bytes = 1 << 20;
  double max_rate = 0;  // keys per second; 0: as fast as it goes
  // False only to show what versions prevent (a test's broken mode): values only, stored where the
  // new owner holds nothing, as before versions. It loses writes and brings deleted keys back.
  bool versions = true;
};

struct FlowCopy {
  std::uint64_t keys = 0;     // counted before copying
  std::uint64_t written = 0;  // stored on the new owner (the rest were there already, or deleted)
};

struct CopyResult {
  std::vector<FlowCopy> flows;  // one per flow, in the same order
  std::uint64_t keys = 0, bytes = 0;  // read from the old owners
  double seconds = 0;
};

// Counts the flows' keys, logs the step, then copies them, reporting to `progress`.
CopyResult copy_flows(const std::vector<Flow>& flows, NodeAdmins& nodes, const CopyOptions& options, Progress& progress,
                      const Log& log);

// How long to wait so that `keys` copied in `elapsed` seconds are not ahead of `max_rate` keys a
// second (0: no limit); 0 when they are not.
double throttle_seconds(std::uint64_t keys, double elapsed, double max_rate);

}  // namespace kv::tools
