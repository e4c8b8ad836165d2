#include "proxy/stats.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "common/json.hpp"
#include "common/metrics.hpp"

namespace kv::proxy {

namespace {

std::string iso_time(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return "";
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::uint64_t non_negative(std::int64_t v) { return static_cast<std::uint64_t>(std::max<std::int64_t>(0, v)); }

std::string_view state_name(bool up) { return up ? "UP" : "DOWN"; }

std::string node_label(const NodeRow& n) { return "node=\"" + n.backend->id + "\""; }

std::string op_label(std::size_t o) {
  return "op=\"" + std::string(quorum_op_name(static_cast<QuorumOp>(o))) + "\"";
}

}  // namespace

std::string_view quorum_op_name(QuorumOp o) noexcept {
  switch (o) {
    case QuorumOp::get: return "get";
    case QuorumOp::put: return "put";
    case QuorumOp::del: return "del";
    case QuorumOp::count_: break;
  }
  return "?";
}

std::string_view quorum_result_name(QuorumResult r) noexcept {
  switch (r) {
    case QuorumResult::ok: return "ok";
    case QuorumResult::refused: return "refused";
    case QuorumResult::failed: return "failed";
    case QuorumResult::count_: break;
  }
  return "?";
}

std::string_view quorum_cause_name(QuorumCause c) noexcept {
  switch (c) {
    case QuorumCause::down: return "down";
    case QuorumCause::connect: return "connect";
    case QuorumCause::timeout: return "timeout";
    case QuorumCause::bad_response: return "bad_response";
    case QuorumCause::node_error: return "node_error";
    case QuorumCause::below_floor: return "below_floor";
    case QuorumCause::mixed: return "mixed";
    case QuorumCause::count_: break;
  }
  return "?";
}

Snapshot snapshot(const Cluster& cluster, const ProxyCounters& counters) {
  const auto t = cluster.topology();
  Snapshot s;
  s.version = t->version;
  s.fingerprint = t->fingerprint;
  if (t->migration) {
    s.change = t->migration->change;
    s.change.yaml.clear();
  }
  s.uptime_seconds = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - cluster.started).count());
  s.ring_nodes = t->backends.size();
  s.ring_points = t->ring->point_count();
  for (const auto& v : node_views(*t)) {
    const Backend& b = *v.backend;
    const auto& st = b.stats;
    NodeRow n;
    n.backend = v.backend;
    n.up = b.up.load();
    {
      std::lock_guard lock(b.mutex);
      n.last_check = b.last_check;
      n.since = iso_time(b.last_change_at);
      n.replica = b.replica;
    }
    n.weight = v.weight;
    n.ownership = v.ownership;
    n.next = v.next;
    n.joining = v.joining;
    n.requests = st.requests();
    for (std::size_t c = 0; c < n.responses.size(); ++c) n.responses[c] = st.responses[c].load();
    for (std::size_t c = 0; c < kErrorClasses; ++c) n.errors[c] = st.errors[c].load();
    n.p50_ms = st.latency.quantile(0.5) * 1000;
    n.p99_ms = st.latency.quantile(0.99) * 1000;
    n.pool_active = non_negative(st.pool_active.load());
    n.pool_idle = non_negative(st.pool_idle.load());
    n.connects = st.connects.load();
    s.nodes.push_back(std::move(n));
  }
  s.client_open = non_negative(counters.client_open.load());
  s.client_total = counters.client_total.load();
  s.retries = counters.retries.load();
  s.rebalance_routed = counters.rebalance_routed.load();
  s.local_2xx = counters.local_2xx.load();
  s.local_4xx = counters.local_4xx.load();
  s.reloads_ok = cluster.reloads_ok.load();
  s.reloads_failed = cluster.reloads_failed.load();
  s.replicas = t->ring->replicas();
  const QuorumCounters& q = counters.quorum;
  for (std::size_t o = 0; o < QuorumCounters::kOps; ++o)
    for (std::size_t r = 0; r < QuorumCounters::kResults; ++r) s.quorum[o][r] = q.requests[o][r].load();
  s.write_backs = q.write_backs.load();
  s.spares_failed = q.spares_failed.load();
  s.spares_late = q.spares_late.load();
  s.requeries = q.requeries.load();
  for (std::size_t c = 0; c < QuorumCounters::kCauses; ++c) s.quorum_failures[c] = q.failures[c].load();
  s.quorum_p50_ms = q.latency.quantile(0.5) * 1000;
  s.quorum_p99_ms = q.latency.quantile(0.99) * 1000;
  s.quorum_counters = &q;
  return s;
}

std::string render_prometheus(const Snapshot& s) {
  std::string out;
  out.reserve(16384);
  using metrics::header;
  using metrics::sample;
  header(out, "kvproxy_build_info", "Build information.", "gauge");
  sample(out, "kvproxy_build_info", "version=\"" KVRING_VERSION "\"", std::uint64_t{1});
  header(out, "kvproxy_ring_version", "Version of the ring in use (1 at start, +1 per reload).", "gauge");
  sample(out, "kvproxy_ring_version", "", s.version);
  header(out, "kvproxy_reloads_total", "Ring reloads, by result.", "counter");
  sample(out, "kvproxy_reloads_total", "result=\"ok\"", s.reloads_ok);
  sample(out, "kvproxy_reloads_total", "result=\"refused\"", s.reloads_failed);

  header(out, "kvproxy_rebalance_phase", "Rebalance in progress: 0 none, 1 dual_write, 2 read_new.", "gauge");
  sample(out, "kvproxy_rebalance_phase", "", std::uint64_t{static_cast<std::uint8_t>(s.change.phase)});
  header(out, "kvproxy_rebalance_routed_total", "Requests for keys changing owner during a rebalance.", "counter");
  sample(out, "kvproxy_rebalance_routed_total", "", s.rebalance_routed);
  header(out, "kvproxy_replicas", "Replicas per key in the ring in use (1: one owner, no quorums).", "gauge");
  sample(out, "kvproxy_replicas", "", std::uint64_t{s.replicas});
  header(out, "kvproxy_quorum_requests_total",
         "Requests on replicated keys, by operation and result (failed: no majority answered).", "counter");
  for (std::size_t o = 0; o < QuorumCounters::kOps; ++o)
    for (std::size_t r = 0; r < QuorumCounters::kResults; ++r)
      sample(out, "kvproxy_quorum_requests_total",
             op_label(o) + ",result=\"" + std::string(quorum_result_name(static_cast<QuorumResult>(r))) + "\"",
             s.quorum[o][r]);
  header(out, "kvproxy_quorum_write_backs_total",
         "Reads whose majority disagreed: the newest write was written back before the answer.", "counter");
  sample(out, "kvproxy_quorum_write_backs_total", "", s.write_backs);
  header(out, "kvproxy_quorum_spares_asked_total",
         "Requests that asked the replicas held as spares (kvproxy --spare-after-ms), by why: an asked "
         "replica failed, or no decision came in time.",
         "counter");
  sample(out, "kvproxy_quorum_spares_asked_total", "reason=\"failed\"", s.spares_failed);
  sample(out, "kvproxy_quorum_spares_asked_total", "reason=\"late\"", s.spares_late);
  header(out, "kvproxy_quorum_requeries_total",
         "Reads and deletes that a purged tombstone left undecided (an old value on one replica, nothing "
         "below the segment's floor on another), queried again.",
         "counter");
  sample(out, "kvproxy_quorum_requeries_total", "", s.requeries);
  header(out, "kvproxy_quorum_failures_total",
         "Requests that found no majority, by what the replicas missed had in common.", "counter");
  for (std::size_t c = 0; c < QuorumCounters::kCauses; ++c)
    sample(out, "kvproxy_quorum_failures_total",
           "cause=\"" + std::string(quorum_cause_name(static_cast<QuorumCause>(c))) + "\"", s.quorum_failures[c]);
  if (s.quorum_counters) {
    header(out, "kvproxy_quorum_duration_seconds", "Replicated keys: request read to answer made.", "histogram");
    s.quorum_counters->latency.render(out, "kvproxy_quorum_duration_seconds", "");
  }
  header(out, "kvproxy_node_up", "1 when the node is up, 0 when down.", "gauge");
  for (const auto& n : s.nodes) sample(out, "kvproxy_node_up", node_label(n), std::uint64_t{n.up ? 1u : 0u});
  header(out, "kvproxy_node_ownership_ratio", "Share of the key space the node owns.", "gauge");
  for (const auto& n : s.nodes) sample(out, "kvproxy_node_ownership_ratio", node_label(n), n.ownership);
  header(out, "kvproxy_responses_total", "Answers relayed from nodes, by node and status class.", "counter");
  for (const auto& n : s.nodes)
    for (std::size_t c = 0; c < n.responses.size(); ++c)
      sample(out, "kvproxy_responses_total", node_label(n) + ",code=\"" + std::to_string(c + 1) + "xx\"", n.responses[c]);
  header(out, "kvproxy_errors_total",
         "Answers the proxy made because of a node (502/503/504), by node and cause; for replicated keys, "
         "requests to the node as a replica that failed (the quorum usually hid them from the client: "
         "kvproxy_quorum_failures_total counts those it could not).",
         "counter");
  for (const auto& n : s.nodes)
    for (std::size_t c = 0; c < kErrorClasses; ++c)
      sample(out, "kvproxy_errors_total",
             node_label(n) + ",cause=\"" + std::string(error_class_name(static_cast<ErrorClass>(c))) + "\"", n.errors[c]);
  header(out, "kvproxy_request_duration_seconds",
         "Request read to answer relayed, by node; for replicated keys, each request to the replica (query, "
         "store or write-back) from sent to answered.",
         "histogram");
  for (const auto& n : s.nodes) n.backend->stats.latency.render(out, "kvproxy_request_duration_seconds", node_label(n));
  header(out, "kvproxy_pool_connections", "Pooled connections to nodes, by state.", "gauge");
  for (const auto& n : s.nodes) {
    sample(out, "kvproxy_pool_connections", node_label(n) + ",state=\"active\"", n.pool_active);
    sample(out, "kvproxy_pool_connections", node_label(n) + ",state=\"idle\"", n.pool_idle);
  }
  header(out, "kvproxy_node_connects_total", "New connections opened to nodes.", "counter");
  for (const auto& n : s.nodes) sample(out, "kvproxy_node_connects_total", node_label(n), n.connects);
  // Replicated nodes (kvnode --ring), from their last health check.
  bool replicas = false;
  for (const auto& n : s.nodes) replicas = replicas || !n.replica.state.empty();
  if (replicas) {
    header(out, "kvproxy_node_replica_state", "1 for the state a node's copy is in (its /health): serving, or checking / "
           "recovering its data (then it answers no quorum read).", "gauge");
    for (const auto& n : s.nodes)
      for (std::string_view st : {"checking", "recovering", "serving"})
        if (!n.replica.state.empty())
          sample(out, "kvproxy_node_replica_state", node_label(n) + ",state=\"" + std::string(st) + "\"",
                 std::uint64_t{n.replica.state == st ? 1u : 0u});
    auto each = [&](std::string_view name, std::string_view help, std::string_view type, auto field) {
      header(out, name, help, type);
      for (const auto& n : s.nodes)
        if (!n.replica.state.empty()) sample(out, name, node_label(n), field(n.replica));
    };
    each("kvproxy_node_keys_behind", "Keys a node's peers held newer at its last anti-entropy exchanges.", "gauge",
         [](const ReplicaHealth& r) { return r.keys_behind; });
    each("kvproxy_node_keys_repaired_total", "Keys a node pulled from its peers by anti-entropy (since it started).",
         "counter", [](const ReplicaHealth& r) { return r.keys_repaired; });
    each("kvproxy_node_anti_entropy_exchanges_total", "A node's anti-entropy exchanges with its peers (since it started).",
         "counter", [](const ReplicaHealth& r) { return r.exchanges; });
    each("kvproxy_node_anti_entropy_bytes_total", "Bytes of a node's anti-entropy exchanges (since it started).", "counter",
         [](const ReplicaHealth& r) { return r.bytes; });
    each("kvproxy_node_tombstones", "Tombstones a node holds.", "gauge", [](const ReplicaHealth& r) { return r.tombstones; });
    each("kvproxy_node_tombstones_purged_total",
         "Tombstones a node purged once every replica held them (since it started).", "counter",
         [](const ReplicaHealth& r) { return r.tombstones_purged; });
    each("kvproxy_node_floor_segments", "Segments where a node keeps a floor (deleted keys purged there).", "gauge",
         [](const ReplicaHealth& r) { return r.floor_segments; });
    each("kvproxy_node_purges_paused", "1 while a node's tombstone purges are paused for a ring change.", "gauge",
         [](const ReplicaHealth& r) { return std::uint64_t{r.purges_paused.empty() ? 0u : 1u}; });
  }
  header(out, "kvproxy_retries_total", "Requests retried once because a pooled connection had been closed.", "counter");
  sample(out, "kvproxy_retries_total", "", s.retries);
  header(out, "kvproxy_local_responses_total", "Answers without a node behind them (no key, /health, /metrics).",
         "counter");
  sample(out, "kvproxy_local_responses_total", "code=\"2xx\"", s.local_2xx);
  sample(out, "kvproxy_local_responses_total", "code=\"4xx\"", s.local_4xx);
  header(out, "kvproxy_client_connections_open", "Client connections open now.", "gauge");
  sample(out, "kvproxy_client_connections_open", "", s.client_open);
  header(out, "kvproxy_client_connections_total", "Client connections accepted.", "counter");
  sample(out, "kvproxy_client_connections_total", "", s.client_total);
  return out;
}

std::string render_json(const Snapshot& s) {
  std::string out = "{\"version\":" + std::to_string(s.version) + ",\"fingerprint\":\"" + s.fingerprint + "\"" +
                    ",\"rebalance\":" +
                    (s.change.phase != Phase::none ? "{\"phase\":\"" + std::string(rebalance::phase_name(s.change.phase)) +
                                                         "\",\"to\":\"" + s.change.to + "\"}"
                                                   : std::string("null")) +
                    ",\"uptime_seconds\":" + std::to_string(s.uptime_seconds) + ",\"nodes\":[";
  for (std::size_t i = 0; i < s.nodes.size(); ++i) {
    const auto& n = s.nodes[i];
    const auto& b = *n.backend;
    if (i) out += ',';
    out += "{\"id\":" + json_quote(b.id) + ",\"address\":" + json_quote(b.address.str()) + ",\"state\":\"" +
           std::string(state_name(n.up)) + "\",\"since\":\"" + n.since + "\"" + ",\"weight\":" + std::to_string(n.weight) +
           ",\"ownership\":" + fmt("%.6f", n.ownership) +
           (n.next ? ",\"next_ownership\":" + fmt("%.6f", *n.next) : std::string()) +
           (n.joining ? ",\"joining\":true" : "") + ",\"requests\":" + std::to_string(n.requests) + ",\"responses\":{";
    for (std::size_t c = 0; c < n.responses.size(); ++c)
      out += (c ? ",\"" : "\"") + std::to_string(c + 1) + "xx\":" + std::to_string(n.responses[c]);
    out += "},\"errors\":{";
    for (std::size_t c = 0; c < kErrorClasses; ++c)
      out += (c ? ",\"" : "\"") + std::string(error_class_name(static_cast<ErrorClass>(c))) + "\":" + std::to_string(n.errors[c]);
    out += "},\"latency_ms\":{\"p50\":" + fmt("%.3f", n.p50_ms) + ",\"p99\":" + fmt("%.3f", n.p99_ms) + "}" +
           ",\"pool\":{\"active\":" + std::to_string(n.pool_active) + ",\"idle\":" + std::to_string(n.pool_idle) + "}" +
           ",\"last_check\":" + json_quote(n.last_check);
    if (const auto& r = n.replica; !r.state.empty())
      out += ",\"replica\":{\"state\":" + json_quote(r.state) + ",\"keys_behind\":" + std::to_string(r.keys_behind) +
             ",\"keys_repaired\":" + std::to_string(r.keys_repaired) + ",\"exchanges\":" + std::to_string(r.exchanges) +
             ",\"failures\":" + std::to_string(r.failures) + ",\"bytes\":" + std::to_string(r.bytes) +
             ",\"peers_in_sync\":" + std::to_string(r.peers_in_sync) + ",\"peers\":" + std::to_string(r.peers) +
             ",\"tombstones\":" + std::to_string(r.tombstones) + ",\"tombstones_purged\":" + std::to_string(r.tombstones_purged) +
             ",\"floor_segments\":" + std::to_string(r.floor_segments) +
             ",\"purges_paused\":" + (r.purges_paused.empty() ? std::string("null") : json_quote(r.purges_paused)) + "}";
    out += "}";
  }
  out += "],\"clients\":{\"open\":" + std::to_string(s.client_open) + ",\"total\":" + std::to_string(s.client_total) +
         "},\"retries\":" + std::to_string(s.retries) + ",\"replicas\":" + std::to_string(s.replicas) +
         ",\"quorum\":{\"requests\":{";
  for (std::size_t o = 0; o < QuorumCounters::kOps; ++o) {
    out += (o ? ",\"" : "\"") + std::string(quorum_op_name(static_cast<QuorumOp>(o))) + "\":{";
    for (std::size_t r = 0; r < QuorumCounters::kResults; ++r)
      out += (r ? ",\"" : "\"") + std::string(quorum_result_name(static_cast<QuorumResult>(r))) +
             "\":" + std::to_string(s.quorum[o][r]);
    out += "}";
  }
  out += "},\"write_backs\":" + std::to_string(s.write_backs) +
         ",\"spares_asked\":{\"failed\":" + std::to_string(s.spares_failed) +
         ",\"late\":" + std::to_string(s.spares_late) + "},\"requeries\":" + std::to_string(s.requeries) +
         ",\"failures\":{";
  for (std::size_t c = 0; c < QuorumCounters::kCauses; ++c)
    out += (c ? ",\"" : "\"") + std::string(quorum_cause_name(static_cast<QuorumCause>(c))) +
           "\":" + std::to_string(s.quorum_failures[c]);
  out += "},\"latency_ms\":{\"p50\":" + fmt("%.3f", s.quorum_p50_ms) + ",\"p99\":" + fmt("%.3f", s.quorum_p99_ms) + "}}}";
  return out;
}

std::string render_html(const Snapshot& s) {
  std::string rows;
  for (const auto& n : s.nodes) {
    const auto& b = *n.backend;
    std::uint64_t errors = 0;
    for (const auto e : n.errors) errors += e;
    const std::string state(state_name(n.up));
    rows += "<tr class=\"node " + std::string(n.up ? "up" : "down") + "\" data-node=\"" + html_escape(b.id) +
            "\" data-state=\"" + state + "\">";
    rows += "<td class=\"id\">" + html_escape(b.id) + (n.joining ? " (joining)" : "") + "</td><td>" +
            html_escape(b.address.str()) + "</td>";
    rows += "<td class=\"state\">" + state + "</td><td>" + html_escape(n.since) + "</td>";
    rows += "<td>" + std::to_string(n.weight) + "</td><td>" + fmt("%.2f%%", n.ownership * 100) +
            (n.next ? " &rarr; " + fmt("%.2f%%", *n.next * 100) : std::string()) + "</td>";
    rows += "<td>" + std::to_string(n.requests) + "</td>";
    for (int c : {1, 3, 4}) rows += "<td>" + std::to_string(n.responses[static_cast<std::size_t>(c)]) + "</td>";
    rows += "<td>" + std::to_string(errors) + "</td>";
    for (std::size_t c = 0; c < kErrorClasses; ++c) rows += "<td>" + std::to_string(n.errors[c]) + "</td>";
    rows += "<td>" + fmt("%.2f", n.p50_ms) + "</td><td>" + fmt("%.2f", n.p99_ms) + "</td>";
    rows += "<td>" + std::to_string(n.pool_active) + "</td><td>" + std::to_string(n.pool_idle) + "</td>";
    rows += "<td class=\"check\">" + html_escape(n.last_check) + "</td></tr>\n";
  }
  std::string quorum;
  if (s.replicas > 1) {
    quorum = "<h2>Replicated keys: " + std::to_string(s.replicas) +
             " replicas each</h2>\n<table id=\"quorum\">\n<thead><tr><th>op</th><th>ok</th><th>refused</th>"
             "<th>failed (no majority)</th></tr></thead>\n<tbody>\n";
    for (std::size_t o = 0; o < QuorumCounters::kOps; ++o) {
      quorum += "<tr data-op=\"" + std::string(quorum_op_name(static_cast<QuorumOp>(o))) + "\"><td class=\"id\">" +
                std::string(quorum_op_name(static_cast<QuorumOp>(o))) + "</td>";
      for (std::size_t r = 0; r < QuorumCounters::kResults; ++r) quorum += "<td>" + std::to_string(s.quorum[o][r]) + "</td>";
      quorum += "</tr>\n";
    }
    const std::uint64_t reads = s.quorum[0][0];
    quorum += "</tbody></table>\n<p class=\"meta\" id=\"quorum-meta\">reads written back before answering " +
              std::to_string(s.write_backs) +
              (reads ? " (" + fmt("%.2f%%", 100.0 * static_cast<double>(reads - std::min(reads, s.write_backs)) /
                                                static_cast<double>(reads)) +
                           " of reads in one round trip)"
                     : std::string()) +
              " &middot; spares asked " + std::to_string(s.spares_failed) + " after a failure, " +
              std::to_string(s.spares_late) + " after --spare-after-ms" + " &middot; queried again " +
              std::to_string(s.requeries) +
              " &middot; failures by cause:";
    for (std::size_t c = 0; c < QuorumCounters::kCauses; ++c)
      quorum += " " + std::string(quorum_cause_name(static_cast<QuorumCause>(c))) + " " + std::to_string(s.quorum_failures[c]);
    quorum += " &middot; latency ms p50 " + fmt("%.2f", s.quorum_p50_ms) + ", p99 " + fmt("%.2f", s.quorum_p99_ms) +
              " &middot; per node below: each request to the replica</p>\n";
  }
  std::string replica_rows;
  for (const auto& n : s.nodes) {
    const auto& r = n.replica;
    if (r.state.empty()) continue;
    replica_rows += "<tr data-replica=\"" + html_escape(n.backend->id) + "\" data-replica-state=\"" + html_escape(r.state) +
                    "\"><td class=\"id\">" + html_escape(n.backend->id) + "</td><td class=\"state\">" + html_escape(r.state) +
                    "</td><td>" + std::to_string(r.keys_behind) + "</td><td>" + std::to_string(r.keys_repaired) + "</td><td>" +
                    std::to_string(r.exchanges) + "</td><td>" + std::to_string(r.failures) + "</td><td>" +
                    fmt("%.1f", static_cast<double>(r.bytes) / 1e3) + "</td><td>" + std::to_string(r.peers_in_sync) + " of " +
                    std::to_string(r.peers) + "</td><td>" + std::to_string(r.tombstones) + "</td><td>" +
                    std::to_string(r.tombstones_purged) +
                    (r.purges_paused.empty() ? std::string() : " (paused for " + html_escape(r.purges_paused) + ")") +
                    "</td></tr>\n";
  }
  if (!replica_rows.empty())
    quorum += "<h2>Replicas: each node's copy (anti-entropy)</h2>\n<table id=\"replicas\">\n<thead><tr><th>node</th>"
              "<th>state</th><th>keys behind</th><th>keys repaired</th><th>exchanges</th><th>failed</th><th>kB exchanged</th>"
              "<th>peers in sync</th><th>tombstones</th><th>purged</th></tr></thead>\n<tbody>\n" + replica_rows + "</tbody></table>\n";
  return R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>kvproxy stats</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.2em 0 .3em}
p.meta{color:#555;margin:.2em 0 1em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right;white-space:nowrap}
th{background:#e8e8f0} td.id,td.check,td:nth-child(2){text-align:left}
tr.up td.state{background:#b8e6b8;font-weight:bold;text-align:center}
tr.down td.state{background:#f2a6a6;font-weight:bold;text-align:center}
tr.down{background:#fbe9e9}
</style></head><body>
<h1>kvproxy )" KVRING_VERSION R"(</h1>
<p class="meta">ring version )" + std::to_string(s.version) + " (" + s.fingerprint + ")" +
         (s.change.phase != Phase::none ? " &middot; <b>rebalancing to ring " + s.change.to + ", phase " +
                                              std::string(rebalance::phase_name(s.change.phase)) + "</b>"
                                        : std::string()) +
         " &middot; " + std::to_string(s.ring_nodes) + " nodes &middot; " + std::to_string(s.ring_points) +
         " ring points &middot; clients open " + std::to_string(s.client_open) + " &middot; retries " +
         std::to_string(s.retries) + R"( &middot; refreshes every 2 s &middot; <a href="/stats.json">json</a> &middot; <a href="/metrics">metrics</a></p>
<table id="nodes">
<thead><tr><th rowspan="2">node</th><th rowspan="2">address</th><th colspan="2">status</th><th rowspan="2">weight</th><th rowspan="2">ownership</th>
<th colspan="4">responses</th><th colspan="5">proxy errors</th><th colspan="2">latency ms</th><th colspan="2">pool</th><th rowspan="2">last check</th></tr>
<tr><th>state</th><th>since</th><th>total</th><th>2xx</th><th>4xx</th><th>5xx</th><th>all</th><th>connect</th><th>timeout</th><th>bad</th><th>down</th><th>p50</th><th>p99</th><th>active</th><th>idle</th></tr></thead>
<tbody>
)" + rows + R"(</tbody></table>
)" + quorum + R"(</body></html>
)";
}

std::string render_ring_json(const Topology& t) {
  std::string out = "{\"version\":" + std::to_string(t.version) + ",\"fingerprint\":\"" + t.fingerprint + "\"" +
                    ",\"vnodes\":" + std::to_string(t.ring->vnodes()) + ",\"points\":" + std::to_string(t.ring->point_count()) +
                    ",\"nodes\":[";
  for (std::size_t i = 0; i < t.backends.size(); ++i) {
    const auto& b = *t.backends[i];
    if (i) out += ',';
    out += "{\"id\":" + json_quote(b.id) + ",\"address\":" + json_quote(b.address.str()) +
           ",\"weight\":" + std::to_string(t.ring->node(static_cast<std::uint32_t>(i)).weight) +
           ",\"ownership\":" + fmt("%.6f", t.ownership[i]) + ",\"state\":\"" + std::string(state_name(b.up.load())) + "\"}";
  }
  return out + "]}";
}

}  // namespace kv::proxy
