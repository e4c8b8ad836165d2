#include "tools/copy.hpp"

#include <algorithm>
#include <chrono>
#include <span>
#include <thread>

#include "common/storage_key.hpp"

namespace kv::tools {
namespace {

// Copies one flow; returns the keys the new owner stored.
std::uint64_t copy_flow(const Flow& f, NodeAdmin& from, NodeAdmin& to, const CopyOptions& opt, Progress& progress) {
  const std::span<const HashRange> ranges(f.ranges);
  std::uint64_t written = 0;
  std::size_t first = 0;  // ranges before this one are done
  std::string after;      // resume after this stored key, within ranges[first]
  while (first < ranges.size()) {
    const std::size_t end = std::min(ranges.size(), first + kRangesPerRequest);
    const ScanBatch batch = from.scan(ranges.subspan(first, end - first), opt.batch_keys, opt.batch_bytes, after, opt.versions);
    if (batch.count > 0) written += to.ingest(batch.records, opt.versions);
    progress.add(batch.count, batch.records.size());
    if (batch.done) {
      first = end;
      after.clear();
    } else {
      // The cursor's hash says which ranges it has passed: the next request starts at the one it is in.
      after = batch.cursor;
      const std::uint64_t h = read_be64(after);
      while (first < ranges.size() && ranges[first].hi < h) ++first;
    }
    if (const double wait = throttle_seconds(progress.keys(), progress.seconds(), opt.max_rate); wait > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
  return written;
}

}  // namespace

double throttle_seconds(std::uint64_t keys, double elapsed, double max_rate) {
  if (max_rate <= 0) return 0;
  return std::max(0.0, static_cast<double>(keys) / max_rate - elapsed);
}

CopyResult copy_flows(const std::vector<Flow>& flows, NodeAdmins& nodes, const CopyOptions& options, Progress& progress,
                      const Log& log) {
  CopyResult result;
  result.flows.resize(flows.size());
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < flows.size(); ++i) {
    result.flows[i].keys = nodes.node(flows[i].from_id, flows[i].from).count(flows[i].ranges);
    total += result.flows[i].keys;
  }
  log.step("copying " + std::to_string(total) + " keys in " + std::to_string(flows.size()) + " flows");
  progress.start(total);
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const Flow& f = flows[i];
    result.flows[i].written = copy_flow(f, nodes.node(f.from_id, f.from), nodes.node(f.to_id, f.to), options, progress);
  }
  progress.finish();
  result.keys = progress.keys();
  result.bytes = progress.bytes();
  result.seconds = progress.seconds();
  return result;
}

}  // namespace kv::tools
