// kvnode's Prometheus counters: what each call counts and the exact text /metrics renders.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "common/storage_key.hpp"
#include "node/metrics.hpp"
#include "node/store.hpp"

using Catch::Contains;

namespace {

// The sample lines of `text` (no comments) that start with `prefix`.
std::vector<std::string> samples(const std::string& text, std::string_view prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

// The families, in the order they are rendered.
std::vector<std::string> types(const std::string& text) { return samples(text, "# TYPE "); }

}  // namespace

TEST_CASE("metrics: a fresh node renders every family, in a stable order", "[metrics]") {
  auto store = kv::open_memory_store();
  kv::NodeMetrics m;
  const std::string text = m.render(*store);
  CHECK(types(text) == std::vector<std::string>{
                           "# TYPE kvnode_build_info gauge",
                           "# TYPE kvnode_requests_total counter",
                           "# TYPE kvnode_request_duration_seconds histogram",
                           "# TYPE kvnode_keys gauge",
                           "# TYPE kvnode_tombstones gauge",
                           "# TYPE kvnode_writable gauge",
                           "# TYPE kvnode_store_errors_total counter",
                           "# TYPE kvnode_version_conflicts_total counter",
                           "# TYPE kvnode_writes_superseded_total counter",
                           "# TYPE kvnode_writes_below_floor_total counter",
                           "# TYPE kvnode_group_commits_total counter",
                           "# TYPE kvnode_connections_open gauge",
                           "# TYPE kvnode_connections_total counter",
                           "# TYPE kvnode_uptime_seconds gauge",
                       });
  CHECK_THAT(text, Catch::StartsWith("# HELP kvnode_build_info Build information.\n# TYPE kvnode_build_info gauge\n"
                                     "kvnode_build_info{version=\"" KVRING_VERSION "\",engine=\"memory\"} 1\n"));
  // No request counted yet: the family has no samples.
  CHECK(samples(text, "kvnode_requests_total").empty());
  CHECK(samples(text, "kvnode_keys") == std::vector<std::string>{"kvnode_keys 0"});
  CHECK(samples(text, "kvnode_tombstones") == std::vector<std::string>{"kvnode_tombstones 0"});
  CHECK(samples(text, "kvnode_writable") == std::vector<std::string>{"kvnode_writable 1"});
  CHECK(samples(text, "kvnode_store_errors_total") == std::vector<std::string>{"kvnode_store_errors_total 0"});
  CHECK(samples(text, "kvnode_version_conflicts_total") == std::vector<std::string>{"kvnode_version_conflicts_total 0"});
  CHECK(samples(text, "kvnode_writes_superseded_total") == std::vector<std::string>{"kvnode_writes_superseded_total 0"});
  CHECK(samples(text, "kvnode_group_commits_total") == std::vector<std::string>{"kvnode_group_commits_total 0"});
  CHECK(samples(text, "kvnode_connections_open") == std::vector<std::string>{"kvnode_connections_open 0"});
  CHECK(samples(text, "kvnode_connections_total") == std::vector<std::string>{"kvnode_connections_total 0"});
  CHECK(samples(text, "kvnode_uptime_seconds ").size() == 1);
  // Each route has its histogram, empty.
  for (const char* route : {"put", "get", "del", "health", "metrics", "admin", "other"}) {
    INFO(route);
    CHECK_THAT(text, Contains("kvnode_request_duration_seconds_count{route=\"" + std::string(route) + "\"} 0\n"));
  }
}

TEST_CASE("metrics: requests are counted by route and status, other codes as \"other\"", "[metrics]") {
  auto store = kv::open_memory_store();
  kv::NodeMetrics m;
  m.count(kv::Route::get, 200, 1'000);         // 1 us: the first bucket
  m.count(kv::Route::get, 200, 3'000'000);     // 3 ms: le 0.005
  m.count(kv::Route::get, 404, 1'000);
  m.count(kv::Route::put, 413, 1'000);
  m.count(kv::Route::admin, 418, 20'000'000'000);  // past the last bucket
  m.count(kv::Route::other, 0, 1'000);
  const std::string text = m.render(*store);
  CHECK(samples(text, "kvnode_requests_total") == std::vector<std::string>{
                                                       "kvnode_requests_total{route=\"put\",code=\"413\"} 1",
                                                       "kvnode_requests_total{route=\"get\",code=\"200\"} 2",
                                                       "kvnode_requests_total{route=\"get\",code=\"404\"} 1",
                                                       "kvnode_requests_total{route=\"admin\",code=\"other\"} 1",
                                                       "kvnode_requests_total{route=\"other\",code=\"other\"} 1",
                                                   });
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_bucket{route=\"get\",le=\"5e-05\"} 2\n"));
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_bucket{route=\"get\",le=\"0.0025\"} 2\n"));
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_bucket{route=\"get\",le=\"0.005\"} 3\n"));
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_bucket{route=\"get\",le=\"+Inf\"} 3\n"));
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_sum{route=\"get\"} 0.003002\n"));
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_count{route=\"get\"} 3\n"));
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_bucket{route=\"admin\",le=\"10\"} 0\n"));
  CHECK_THAT(text, Contains("kvnode_request_duration_seconds_bucket{route=\"admin\",le=\"+Inf\"} 1\n"));
}

TEST_CASE("metrics: every counted code has its own slot", "[metrics]") {
  auto store = kv::open_memory_store();
  kv::NodeMetrics m;
  for (unsigned code : kv::NodeMetrics::kCodes) m.count(kv::Route::health, code, 1);
  const auto lines = samples(m.render(*store), "kvnode_requests_total");
  REQUIRE(lines.size() == kv::NodeMetrics::kCodes.size());
  CHECK(lines.front() == "kvnode_requests_total{route=\"health\",code=\"200\"} 1");
  CHECK(lines[5] == "kvnode_requests_total{route=\"health\",code=\"409\"} 1");
  CHECK(lines[8] == "kvnode_requests_total{route=\"health\",code=\"500\"} 1");
  CHECK(lines.back() == "kvnode_requests_total{route=\"health\",code=\"other\"} 1");
}

TEST_CASE("metrics: connections, store errors, versioned writes and the store's own gauges", "[metrics]") {
  auto store = kv::open_memory_store();
  kv::NodeMetrics m;
  m.connection_opened();
  m.connection_opened();
  m.connection_opened();
  m.connection_closed();
  m.store_error();
  m.store_error();
  m.version_conflicts();
  m.writes_superseded();
  m.writes_superseded(4);
  std::string err;
  REQUIRE(store->put(kv::storage_key("a"), "1", err) == kv::StoreStatus::ok);
  REQUIRE(store->put(kv::storage_key("b"), "2", err) == kv::StoreStatus::ok);
  REQUIRE(store->put(kv::storage_key("gone"), "3", err) == kv::StoreStatus::ok);
  REQUIRE(store->del(kv::storage_key("gone"), err) == kv::StoreStatus::ok);  // keeps a tombstone
  std::string text = m.render(*store);
  CHECK(samples(text, "kvnode_connections_open") == std::vector<std::string>{"kvnode_connections_open 2"});
  CHECK(samples(text, "kvnode_connections_total") == std::vector<std::string>{"kvnode_connections_total 3"});
  CHECK(samples(text, "kvnode_store_errors_total") == std::vector<std::string>{"kvnode_store_errors_total 2"});
  CHECK(samples(text, "kvnode_version_conflicts_total") == std::vector<std::string>{"kvnode_version_conflicts_total 1"});
  CHECK(samples(text, "kvnode_writes_superseded_total") == std::vector<std::string>{"kvnode_writes_superseded_total 5"});
  CHECK(samples(text, "kvnode_keys") == std::vector<std::string>{"kvnode_keys 2"});
  CHECK(samples(text, "kvnode_tombstones") == std::vector<std::string>{"kvnode_tombstones 1"});

  // More closes than opens (a race at shutdown) never shows a negative gauge.
  for (int i = 0; i < 5; ++i) m.connection_closed();
  text = m.render(*store);
  CHECK(samples(text, "kvnode_connections_open") == std::vector<std::string>{"kvnode_connections_open 0"});
  CHECK(samples(text, "kvnode_connections_total") == std::vector<std::string>{"kvnode_connections_total 3"});
}
