// kvnode's counters and their rendering as Prometheus text (node/metrics.hpp).
#include "node/metrics.hpp"

#include <algorithm>

#include "node/store.hpp"

namespace kv {

void NodeMetrics::count(Route r, unsigned status, std::uint64_t ns) noexcept {
  std::size_t slot = kCodes.size() - 1;
  for (std::size_t i = 0; i + 1 < kCodes.size(); ++i)
    if (kCodes[i] == status) slot = i;
  const auto ri = static_cast<std::size_t>(r);
  requests_[ri][slot].fetch_add(1, std::memory_order_relaxed);
  latency_[ri].observe_ns(ns);
}

namespace {

// RocksDB's own gauges: what an operator watches to tell a node that reads from memory from one that
// is still compacting a bulk load, or whose working set outgrew its block cache.
void render_engine(std::string& out, const EngineStats& s) {
  const auto gauge = [&out](const char* name, const char* help, std::uint64_t v) {
    metrics::header(out, name, help, "gauge");
    metrics::sample(out, name, "", v);
  };
  gauge("kvnode_rocksdb_sst_bytes", "Table files on disk (all column families).", s.sst_bytes);
  gauge("kvnode_rocksdb_memtable_bytes", "Written, in memory, not flushed to a table file yet.", s.memtable_bytes);
  gauge("kvnode_rocksdb_pending_compaction_bytes", "RocksDB's estimate of the bytes compaction still has to rewrite.",
        s.pending_compaction_bytes);
  gauge("kvnode_rocksdb_running_compactions", "Compactions running now.", s.running_compactions);
  gauge("kvnode_rocksdb_running_flushes", "Memtable flushes running now.", s.running_flushes);
  gauge("kvnode_rocksdb_l0_files", "Level-0 table files: a point read may look in each.", s.l0_files);
  gauge("kvnode_rocksdb_block_cache_bytes", "Block cache in use.", s.block_cache_bytes);
  gauge("kvnode_rocksdb_block_cache_capacity_bytes", "Block cache size (--block-cache-mb).", s.block_cache_capacity);
}

}  // namespace

std::string NodeMetrics::render(Store& store) const {
  std::string out;
  out.reserve(8192);
  metrics::header(out, "kvnode_build_info", "Build information.", "gauge");
  metrics::sample(out, "kvnode_build_info", "version=\"" KVRING_VERSION "\",engine=\"" + std::string(store.engine()) + "\"",
                  std::uint64_t{1});
  metrics::header(out, "kvnode_requests_total", "HTTP requests answered, by route and status code.", "counter");
  for (std::size_t r = 0; r < kRoutes; ++r) {
    for (std::size_t c = 0; c < kCodes.size(); ++c) {
      const auto v = requests_[r][c].load(std::memory_order_relaxed);
      if (v == 0) continue;
      const std::string labels = "route=\"" + std::string(route_name(static_cast<Route>(r))) + "\",code=\"" +
                                 (kCodes[c] ? std::to_string(kCodes[c]) : std::string("other")) + "\"";
      metrics::sample(out, "kvnode_requests_total", labels, v);
    }
  }
  metrics::header(out, "kvnode_request_duration_seconds", "Time from a parsed request to its response written.", "histogram");
  for (std::size_t r = 0; r < kRoutes; ++r)
    latency_[r].render(out, "kvnode_request_duration_seconds",
                       "route=\"" + std::string(route_name(static_cast<Route>(r))) + "\"");
  metrics::header(out, "kvnode_keys", "Keys stored (RocksDB: its estimate; memory: exact).", "gauge");
  metrics::sample(out, "kvnode_keys", "", store.key_count());
  metrics::header(out, "kvnode_tombstones",
                  "Tombstones held: each delete of a value keeps one, with its version, until ring-rebalance purges it.",
                  "gauge");
  metrics::sample(out, "kvnode_tombstones", "", store.tombstone_count());
  metrics::header(out, "kvnode_writable", "1 while writes work; 0 after a storage error stopped them (reads go on).", "gauge");
  metrics::sample(out, "kvnode_writable", "", std::uint64_t{store.write_error().empty() ? 1u : 0u});
  metrics::header(out, "kvnode_store_errors_total", "Storage engine errors.", "counter");
  metrics::sample(out, "kvnode_store_errors_total", "", store_errors_.load(std::memory_order_relaxed));
  metrics::header(out, "kvnode_version_conflicts_total",
                  "Tagged writes refused (409, or an ingest conflict): their version already held another value.", "counter");
  metrics::sample(out, "kvnode_version_conflicts_total", "", conflicts_.load(std::memory_order_relaxed));
  metrics::header(out, "kvnode_writes_superseded_total",
                  "Tagged writes left out: the key held a newer version, or this one already.", "counter");
  metrics::sample(out, "kvnode_writes_superseded_total", "", superseded_.load(std::memory_order_relaxed));
  metrics::header(out, "kvnode_writes_below_floor_total",
                  "Coordinators' stores refused (409, X-KV-Floor): the key held nothing and the version was not above "
                  "its segment's floor (or the floors were not learned yet).", "counter");
  metrics::sample(out, "kvnode_writes_below_floor_total", "", below_floor_.load(std::memory_order_relaxed));
  metrics::header(out, "kvnode_group_commits_total", "Group commits (one batch, one fsync each) with --sync.", "counter");
  metrics::sample(out, "kvnode_group_commits_total", "", store.commits());
  if (store.engine() == "rocksdb") render_engine(out, store.engine_stats());
  metrics::header(out, "kvnode_connections_open", "Client connections open now.", "gauge");
  metrics::sample(out, "kvnode_connections_open", "", static_cast<std::uint64_t>(std::max<std::int64_t>(0, open_.load())));
  metrics::header(out, "kvnode_connections_total", "Client connections accepted.", "counter");
  metrics::sample(out, "kvnode_connections_total", "", accepted_.load(std::memory_order_relaxed));
  metrics::header(out, "kvnode_uptime_seconds", "Seconds since start.", "gauge");
  metrics::sample(out, "kvnode_uptime_seconds", "",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  if (section_) out += section_();
  return out;
}

}  // namespace kv
