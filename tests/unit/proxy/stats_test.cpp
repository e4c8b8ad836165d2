// proxy/stats.hpp: one snapshot of a real cluster (two nodes, then a rebalance that moves n1's share
// to n3), rendered three ways. Each test reads the same numbers back from the JSON (parsed with
// Boost.JSON), the Prometheus samples and the HTML row of each node (found by data-node), so the
// three can never drift apart unnoticed. No sockets.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/ring_change.hpp"
#include "proxy/cluster.hpp"
#include "proxy/options.hpp"
#include "proxy/stats.hpp"

using namespace kv;
using namespace kv::proxy;
namespace json = boost::json;

namespace {

NodeConfig node(const std::string& id, std::uint16_t port, std::uint32_t weight = 1) {
  return {id, {"127.0.0.1", port}, weight, {}};
}

RingConfig ring(std::vector<NodeConfig> nodes) {
  RingConfig c;
  c.vnodes = 256;
  c.nodes = std::move(nodes);
  return c;
}

std::string printed(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// What each rendering makes of a share of the key space: JSON "%.6f", Prometheus "%.9g", HTML "%.2f%".
double json_share(double v) { return std::stod(printed("%.6f", v)); }
std::string prom_share(double v) { return printed("%.9g", v); }
std::string html_share(double v) { return printed("%.2f%%", v * 100); }

std::string iso(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The value of the Prometheus sample `series` (`name{labels}` as rendered), or nullopt; fails if the
// series is there more than once.
std::optional<std::string> prom(const std::string& text, const std::string& series) {
  std::optional<std::string> found;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) != 0) continue;
    CHECK_FALSE(found);
    found = line.substr(series.size() + 1);
  }
  return found;
}

// The HTML row of node `id`: its opening tag and its cells' contents.
struct HtmlRow {
  std::string tag;
  std::vector<std::string> cells;
};

std::optional<HtmlRow> html_row(const std::string& html, const std::string& id) {
  const auto at = html.find("data-node=\"" + id + "\"");
  if (at == std::string::npos) return std::nullopt;
  CHECK(html.find("data-node=\"" + id + "\"", at + 1) == std::string::npos);
  const auto start = html.rfind("<tr", at);
  const auto end = html.find("</tr>", at);
  REQUIRE(start != std::string::npos);
  REQUIRE(end != std::string::npos);
  HtmlRow row;
  row.tag = html.substr(start, html.find('>', start) + 1 - start);
  const std::string body = html.substr(start, end - start);
  static const std::regex cell("<td[^>]*>([^<]*)</td>");
  for (std::sregex_iterator it(body.begin(), body.end(), cell), last; it != last; ++it) row.cells.push_back((*it)[1]);
  return row;
}

// The HTML columns, in order.
enum Col : std::size_t {
  c_id, c_address, c_state, c_since, c_weight, c_ownership, c_total, c_2xx, c_4xx, c_5xx,
  c_errors, c_connect, c_timeout, c_bad, c_down, c_p50, c_p99, c_active, c_idle, c_check, c_count
};

const json::object& json_node(const json::value& doc, const std::string& id) {
  for (const auto& n : doc.at("nodes").as_array())
    if (n.at("id").as_string() == id) return n.as_object();
  FAIL("no node " << id << " in the JSON");
  throw;
}

std::uint64_t u(const json::value& v) { return v.to_number<std::uint64_t>(); }
double d(const json::value& v) { return v.to_number<double>(); }

struct CaptureCerr {
  std::ostringstream text;
  std::streambuf* old = std::cerr.rdbuf(text.rdbuf());
  ~CaptureCerr() { std::cerr.rdbuf(old); }
};

std::shared_ptr<Backend> backend(const Topology& t, const std::string& id) {
  for (const auto& b : t.backends)
    if (b->id == id) return b;
  if (t.migration)
    for (const auto& b : t.migration->backends)
      if (b->id == id) return b;
  FAIL("no backend " << id);
  return nullptr;
}

// n1 (weight 1) and n2 (weight 3); n1 has served traffic, n2 none yet.
struct Fixture {
  Cluster cluster{HealthSettings{}};
  ProxyCounters counters;
  std::shared_ptr<Backend> n1, n2;

  Fixture() {
    cluster.publish(cluster.prepare(ring({node("n1", 9001), node("n2", 9002, 3)}), "ring.yaml"));
    n1 = backend(*cluster.topology(), "n1");
    n2 = backend(*cluster.topology(), "n2");
    auto& s = n1->stats;
    for (unsigned status : {200u, 200u, 200u, 200u, 200u, 204u, 101u, 304u, 404u, 404u, 503u}) s.response(status);
    s.error(ErrorClass::connect);
    s.error(ErrorClass::timeout);
    s.error(ErrorClass::timeout);
    for (int i = 0; i < 3; ++i) s.error(ErrorClass::down);
    s.latency.observe_ns(200'000);    // 0.2 ms: the 0.25 ms bucket
    s.latency.observe_ns(200'000);
    s.latency.observe_ns(3'000'000);  // 3 ms: the 5 ms bucket
    s.pool_active = 2;
    s.pool_idle = 7;
    s.connects = 9;
    n2->stats.pool_idle = -1;  // a torn read of the workers' adds and subtracts: shown as 0
    counters.client_open = 4;
    counters.client_total = 40;
    counters.retries = 3;
    counters.rebalance_routed = 11;
    counters.local_2xx = 6;
    counters.local_4xx = 1;
    cluster.reloads_ok = 2;
    cluster.reloads_failed = 1;
  }

  // Moves to n2 (weight 3) and n3 (weight 2): n1 leaves, n3 joins.
  std::shared_ptr<Migration> begin_rebalance(Phase phase) {
    auto m = cluster.prepare_migration(ring({node("n2", 9002, 3), node("n3", 9003, 2)}), "", phase, "new.yaml");
    cluster.publish(with_migration(*cluster.topology(), m));
    return m;
  }
};

}  // namespace

TEST_CASE("snapshot: the cluster's and the counters' numbers, taken once", "[stats]") {
  Fixture f;
  const auto t = f.cluster.topology();
  const Snapshot s = snapshot(f.cluster, f.counters);
  CHECK(s.version == 1);
  CHECK(s.fingerprint == t->fingerprint);
  CHECK(s.change.phase == Phase::none);
  CHECK(s.uptime_seconds < 60);
  CHECK(s.ring_nodes == 2);
  CHECK(s.ring_points == (1 + 3) * 256);
  REQUIRE(s.nodes.size() == 2);
  const NodeRow& r = s.nodes[0];
  CHECK(r.backend == f.n1);
  CHECK(r.up);
  CHECK(r.weight == 1);
  CHECK(r.ownership == t->ownership[0]);
  CHECK_FALSE(r.next);
  CHECK_FALSE(r.joining);
  CHECK(r.requests == 17);
  CHECK(r.responses == std::array<std::uint64_t, 5>{1, 6, 1, 2, 1});
  CHECK(r.errors == std::array<std::uint64_t, kErrorClasses>{1, 2, 0, 3});
  CHECK(r.p50_ms == Approx(0.25));
  CHECK(r.p99_ms == Approx(5.0));
  CHECK(r.pool_active == 2);
  CHECK(r.pool_idle == 7);
  CHECK(r.connects == 9);
  CHECK(r.last_check == "none yet");
  CHECK(r.since == iso(f.n1->last_change_at));
  CHECK(s.nodes[1].weight == 3);
  CHECK(s.nodes[1].requests == 0);
  CHECK(s.nodes[1].pool_idle == 0);
  CHECK(s.nodes[1].p50_ms == 0.0);
  CHECK(s.client_open == 4);
  CHECK(s.client_total == 40);
  CHECK(s.retries == 3);
  CHECK(s.rebalance_routed == 11);
  CHECK(s.local_2xx == 6);
  CHECK(s.local_4xx == 1);
  CHECK(s.reloads_ok == 2);
  CHECK(s.reloads_failed == 1);
}

TEST_CASE("render_json, render_prometheus and render_html say the same numbers", "[stats]") {
  Fixture f;
  const auto t = f.cluster.topology();
  const Snapshot s = snapshot(f.cluster, f.counters);
  const json::value doc = json::parse(render_json(s));
  const std::string metrics = render_prometheus(s);
  const std::string html = render_html(s);
  const double own1 = t->ownership[0], own2 = t->ownership[1];
  const std::string since1 = iso(f.n1->last_change_at);

  SECTION("the ring and the proxy") {
    CHECK(u(doc.at("version")) == 1);
    CHECK(doc.at("fingerprint").as_string() == t->fingerprint);
    CHECK(doc.at("rebalance").is_null());
    CHECK(u(doc.at("uptime_seconds")) == s.uptime_seconds);
    CHECK(u(doc.at("clients").at("open")) == 4);
    CHECK(u(doc.at("clients").at("total")) == 40);
    CHECK(u(doc.at("retries")) == 3);

    CHECK(prom(metrics, "kvproxy_build_info{version=\"" KVRING_VERSION "\"}") == "1");
    CHECK(prom(metrics, "kvproxy_ring_version") == "1");
    CHECK(prom(metrics, "kvproxy_reloads_total{result=\"ok\"}") == "2");
    CHECK(prom(metrics, "kvproxy_reloads_total{result=\"refused\"}") == "1");
    CHECK(prom(metrics, "kvproxy_rebalance_phase") == "0");
    CHECK(prom(metrics, "kvproxy_rebalance_routed_total") == "11");
    CHECK(prom(metrics, "kvproxy_retries_total") == "3");
    CHECK(prom(metrics, "kvproxy_local_responses_total{code=\"2xx\"}") == "6");
    CHECK(prom(metrics, "kvproxy_local_responses_total{code=\"4xx\"}") == "1");
    CHECK(prom(metrics, "kvproxy_client_connections_open") == "4");
    CHECK(prom(metrics, "kvproxy_client_connections_total") == "40");

    CHECK(html.find("<title>kvproxy stats</title>") != std::string::npos);
    CHECK(html.find("<h1>kvproxy " KVRING_VERSION "</h1>") != std::string::npos);
    CHECK(html.find("ring version 1 (" + t->fingerprint + ") &middot; 2 nodes &middot; 1024 ring points &middot; "
                    "clients open 4 &middot; retries 3 &middot;") != std::string::npos);
    CHECK(html.find("rebalancing") == std::string::npos);
  }
  SECTION("n1: served traffic") {
    const auto& n = json_node(doc, "n1");
    CHECK(n.at("address").as_string() == "127.0.0.1:9001");
    CHECK(n.at("state").as_string() == "UP");
    CHECK(n.at("since").as_string() == since1);
    CHECK(u(n.at("weight")) == 1);
    CHECK(d(n.at("ownership")) == json_share(own1));
    CHECK_FALSE(n.contains("next_ownership"));
    CHECK_FALSE(n.contains("joining"));
    CHECK(u(n.at("requests")) == 17);
    const auto& r = n.at("responses");
    CHECK(u(r.at("1xx")) == 1);
    CHECK(u(r.at("2xx")) == 6);
    CHECK(u(r.at("3xx")) == 1);
    CHECK(u(r.at("4xx")) == 2);
    CHECK(u(r.at("5xx")) == 1);
    const auto& e = n.at("errors");
    CHECK(u(e.at("connect")) == 1);
    CHECK(u(e.at("timeout")) == 2);
    CHECK(u(e.at("bad_response")) == 0);
    CHECK(u(e.at("down")) == 3);
    CHECK(d(n.at("latency_ms").at("p50")) == 0.25);
    CHECK(d(n.at("latency_ms").at("p99")) == 5.0);
    CHECK(u(n.at("pool").at("active")) == 2);
    CHECK(u(n.at("pool").at("idle")) == 7);
    CHECK(n.at("last_check").as_string() == "none yet");

    CHECK(prom(metrics, "kvproxy_node_up{node=\"n1\"}") == "1");
    CHECK(prom(metrics, "kvproxy_node_ownership_ratio{node=\"n1\"}") == prom_share(own1));
    CHECK(std::stod(*prom(metrics, "kvproxy_node_ownership_ratio{node=\"n1\"}")) == Approx(d(n.at("ownership"))).margin(5e-7));
    const std::map<std::string, std::string> codes{{"1xx", "1"}, {"2xx", "6"}, {"3xx", "1"}, {"4xx", "2"}, {"5xx", "1"}};
    for (const auto& [code, value] : codes)
      CHECK(prom(metrics, "kvproxy_responses_total{node=\"n1\",code=\"" + code + "\"}") == value);
    CHECK(prom(metrics, "kvproxy_errors_total{node=\"n1\",cause=\"connect\"}") == "1");
    CHECK(prom(metrics, "kvproxy_errors_total{node=\"n1\",cause=\"timeout\"}") == "2");
    CHECK(prom(metrics, "kvproxy_errors_total{node=\"n1\",cause=\"bad_response\"}") == "0");
    CHECK(prom(metrics, "kvproxy_errors_total{node=\"n1\",cause=\"down\"}") == "3");
    // The histogram behind p50 and p99: two answers at or under 0.25 ms, the third under 5 ms.
    const std::string h = "kvproxy_request_duration_seconds";
    CHECK(prom(metrics, h + "_bucket{node=\"n1\",le=\"0.0001\"}") == "0");
    CHECK(prom(metrics, h + "_bucket{node=\"n1\",le=\"0.00025\"}") == "2");
    CHECK(prom(metrics, h + "_bucket{node=\"n1\",le=\"0.0025\"}") == "2");
    CHECK(prom(metrics, h + "_bucket{node=\"n1\",le=\"0.005\"}") == "3");
    CHECK(prom(metrics, h + "_bucket{node=\"n1\",le=\"10\"}") == "3");
    CHECK(prom(metrics, h + "_bucket{node=\"n1\",le=\"+Inf\"}") == "3");
    CHECK(prom(metrics, h + "_count{node=\"n1\"}") == "3");
    CHECK(prom(metrics, h + "_sum{node=\"n1\"}") == "0.0034");
    CHECK(prom(metrics, "kvproxy_pool_connections{node=\"n1\",state=\"active\"}") == "2");
    CHECK(prom(metrics, "kvproxy_pool_connections{node=\"n1\",state=\"idle\"}") == "7");
    CHECK(prom(metrics, "kvproxy_node_connects_total{node=\"n1\"}") == "9");

    const auto row = html_row(html, "n1");
    REQUIRE(row);
    CHECK(row->tag == "<tr class=\"node up\" data-node=\"n1\" data-state=\"UP\">");
    REQUIRE(row->cells.size() == c_count);
    CHECK(row->cells[c_id] == "n1");
    CHECK(row->cells[c_address] == "127.0.0.1:9001");
    CHECK(row->cells[c_state] == "UP");
    CHECK(row->cells[c_since] == since1);
    CHECK(row->cells[c_weight] == "1");
    CHECK(row->cells[c_ownership] == html_share(own1));
    CHECK(row->cells[c_total] == "17");
    CHECK(row->cells[c_2xx] == "6");
    CHECK(row->cells[c_4xx] == "2");
    CHECK(row->cells[c_5xx] == "1");
    CHECK(row->cells[c_errors] == "6");
    CHECK(row->cells[c_connect] == "1");
    CHECK(row->cells[c_timeout] == "2");
    CHECK(row->cells[c_bad] == "0");
    CHECK(row->cells[c_down] == "3");
    CHECK(row->cells[c_p50] == "0.25");
    CHECK(row->cells[c_p99] == "5.00");
    CHECK(row->cells[c_active] == "2");
    CHECK(row->cells[c_idle] == "7");
    CHECK(row->cells[c_check] == "none yet");
  }
  SECTION("n2: no traffic, a negative idle count shown as 0") {
    const auto& n = json_node(doc, "n2");
    CHECK(u(n.at("weight")) == 3);
    CHECK(d(n.at("ownership")) == json_share(own2));
    CHECK(u(n.at("requests")) == 0);
    CHECK(d(n.at("latency_ms").at("p50")) == 0.0);
    CHECK(u(n.at("pool").at("idle")) == 0);
    CHECK(prom(metrics, "kvproxy_node_ownership_ratio{node=\"n2\"}") == prom_share(own2));
    CHECK(prom(metrics, "kvproxy_pool_connections{node=\"n2\",state=\"idle\"}") == "0");
    CHECK(prom(metrics, "kvproxy_request_duration_seconds_count{node=\"n2\"}") == "0");
    CHECK(prom(metrics, "kvproxy_request_duration_seconds_bucket{node=\"n2\",le=\"+Inf\"}") == "0");
    const auto row = html_row(html, "n2");
    REQUIRE(row);
    REQUIRE(row->cells.size() == c_count);
    CHECK(row->cells[c_weight] == "3");
    CHECK(row->cells[c_ownership] == html_share(own2));
    CHECK(row->cells[c_total] == "0");
    CHECK(row->cells[c_p50] == "0.00");
    CHECK(row->cells[c_idle] == "0");
  }
  SECTION("the nodes in ring order, in all three") {
    const auto& nodes = doc.at("nodes").as_array();
    REQUIRE(nodes.size() == 2);
    CHECK(nodes[0].at("id").as_string() == "n1");
    CHECK(nodes[1].at("id").as_string() == "n2");
    CHECK(metrics.find("kvproxy_node_up{node=\"n1\"}") < metrics.find("kvproxy_node_up{node=\"n2\"}"));
    CHECK(html.find("data-node=\"n1\"") < html.find("data-node=\"n2\""));
  }
}

TEST_CASE("render_prometheus: every family has its HELP and TYPE, and no series is there twice", "[stats]") {
  Fixture f;
  f.begin_rebalance(Phase::dual_write);  // three nodes: the joining one too
  const std::string metrics = render_prometheus(snapshot(f.cluster, f.counters));
  std::map<std::string, int> series;
  std::map<std::string, std::string> types;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      const auto sp = line.find(' ', 7);
      types[line.substr(7, sp - 7)] = line.substr(sp + 1);
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    REQUIRE_FALSE(line.empty());
    const std::string key = line.substr(0, line.rfind(' '));
    ++series[key];
    std::string family = key.substr(0, key.find('{'));
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (!types.count(family) && family.size() > std::strlen(suffix) &&
          family.compare(family.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        family.resize(family.size() - std::strlen(suffix));
    INFO(line);
    CHECK(types.count(family) == 1);
  }
  for (const auto& [key, n] : series) {
    INFO(key);
    CHECK(n == 1);
  }
  CHECK(types["kvproxy_request_duration_seconds"] == "histogram");
  CHECK(types["kvproxy_responses_total"] == "counter");
  CHECK(types["kvproxy_node_up"] == "gauge");
  CHECK(series.count("kvproxy_node_up{node=\"n3\"}") == 1);
  // 17 buckets, a sum and a count per node
  std::size_t histogram_series = 0;
  for (const auto& [key, n] : series) histogram_series += key.rfind("kvproxy_request_duration_seconds", 0) == 0;
  CHECK(histogram_series == 3 * 19);
}

TEST_CASE("a node that is DOWN, with why, in all three", "[stats]") {
  Fixture f;
  CaptureCerr quiet;
  const std::string why = "GET /health: 503 <b>\"busy\" & slow</b>";
  for (int i = 0; i < 3; ++i) f.cluster.check_result(*f.n2, false, why);
  REQUIRE_FALSE(f.n2->up);
  const std::string since = iso(f.n2->last_change_at);
  const Snapshot s = snapshot(f.cluster, f.counters);
  const json::value doc = json::parse(render_json(s));
  const std::string metrics = render_prometheus(s);
  const std::string html = render_html(s);

  const auto& n = json_node(doc, "n2");
  CHECK(n.at("state").as_string() == "DOWN");
  CHECK(n.at("since").as_string() == since);
  CHECK(n.at("last_check").as_string() == why);
  CHECK(json_node(doc, "n1").at("state").as_string() == "UP");

  CHECK(prom(metrics, "kvproxy_node_up{node=\"n2\"}") == "0");
  CHECK(prom(metrics, "kvproxy_node_up{node=\"n1\"}") == "1");

  const auto row = html_row(html, "n2");
  REQUIRE(row);
  CHECK(row->tag == "<tr class=\"node down\" data-node=\"n2\" data-state=\"DOWN\">");
  REQUIRE(row->cells.size() == c_count);
  CHECK(row->cells[c_state] == "DOWN");
  CHECK(row->cells[c_since] == since);
  CHECK(html.find("<td class=\"check\">GET /health: 503 &lt;b&gt;&quot;busy&quot; &amp; slow&lt;/b&gt;</td>") !=
        std::string::npos);
  CHECK(html_row(html, "n1")->tag == "<tr class=\"node up\" data-node=\"n1\" data-state=\"UP\">");

  SECTION("marked down by a failed request: the same in all three") {
    f.cluster.passive_down(*f.n1, "connect: Connection refused");
    const Snapshot s2 = snapshot(f.cluster, f.counters);
    CHECK(json_node(json::parse(render_json(s2)), "n1").at("state").as_string() == "DOWN");
    CHECK(prom(render_prometheus(s2), "kvproxy_node_up{node=\"n1\"}") == "0");
    CHECK(html_row(render_html(s2), "n1")->cells[c_state] == "DOWN");
  }
}

TEST_CASE("a rebalance in all three: the phase, the joining node, each node's next share", "[stats]") {
  Fixture f;
  const auto old = f.cluster.topology();
  const auto m = f.begin_rebalance(Phase::dual_write);
  const auto n3 = m->backends[1];
  REQUIRE(n3->id == "n3");
  // the new ring, by id: n2 (weight 3), n3 (weight 2)
  const double next2 = m->ownership[0], next3 = m->ownership[1];
  REQUIRE(m->backends[0] == f.n2);
  const Snapshot s = snapshot(f.cluster, f.counters);
  const json::value doc = json::parse(render_json(s));
  const std::string metrics = render_prometheus(s);
  const std::string html = render_html(s);

  CHECK(s.version == 2);
  CHECK(s.fingerprint == old->fingerprint);  // the ring in use is still the old one
  CHECK(s.change.phase == Phase::dual_write);
  CHECK(s.change.from == old->fingerprint);
  CHECK(s.change.to == m->fingerprint());
  CHECK(s.ring_nodes == 2);
  REQUIRE(s.nodes.size() == 3);

  SECTION("the phase and the ring it goes to") {
    CHECK(doc.at("rebalance").at("phase").as_string() == "dual_write");
    CHECK(doc.at("rebalance").at("to").as_string() == m->fingerprint());
    CHECK(doc.at("fingerprint").as_string() == old->fingerprint);
    CHECK(u(doc.at("version")) == 2);
    CHECK(prom(metrics, "kvproxy_rebalance_phase") == "1");
    CHECK(prom(metrics, "kvproxy_ring_version") == "2");
    CHECK(html.find("ring version 2 (" + old->fingerprint + ") &middot; <b>rebalancing to ring " + m->fingerprint() +
                    ", phase dual_write</b> &middot; 2 nodes &middot; 1024 ring points") != std::string::npos);
  }
  SECTION("n3 joins: no share yet, its share to come, its weight in the new ring") {
    const auto& n = json_node(doc, "n3");
    CHECK(n.at("joining").as_bool());
    CHECK(n.at("state").as_string() == "UP");
    CHECK(n.at("address").as_string() == "127.0.0.1:9003");
    CHECK(u(n.at("weight")) == 2);
    CHECK(d(n.at("ownership")) == 0.0);
    CHECK(d(n.at("next_ownership")) == json_share(next3));
    CHECK(prom(metrics, "kvproxy_node_up{node=\"n3\"}") == "1");
    CHECK(prom(metrics, "kvproxy_node_ownership_ratio{node=\"n3\"}") == "0");
    CHECK(prom(metrics, "kvproxy_responses_total{node=\"n3\",code=\"2xx\"}") == "0");
    const auto row = html_row(html, "n3");
    REQUIRE(row);
    REQUIRE(row->cells.size() == c_count);
    CHECK(row->cells[c_id] == "n3 (joining)");
    CHECK(row->cells[c_weight] == "2");
    CHECK(row->cells[c_ownership] == "0.00% &rarr; " + html_share(next3));
    CHECK(row->tag == "<tr class=\"node up\" data-node=\"n3\" data-state=\"UP\">");
    n3->stats.response(201);
    CHECK(prom(render_prometheus(snapshot(f.cluster, f.counters)), "kvproxy_responses_total{node=\"n3\",code=\"2xx\"}") ==
          "1");
  }
  SECTION("n2 stays, with a larger share; n1 leaves, its next share 0") {
    const auto& n2 = json_node(doc, "n2");
    CHECK_FALSE(n2.contains("joining"));
    CHECK(u(n2.at("weight")) == 3);  // the ring in use
    CHECK(d(n2.at("ownership")) == json_share(old->ownership[1]));
    CHECK(d(n2.at("next_ownership")) == json_share(next2));
    const auto& n1 = json_node(doc, "n1");
    CHECK_FALSE(n1.contains("joining"));
    CHECK(d(n1.at("next_ownership")) == 0.0);
    CHECK(render_json(s).find("\"next_ownership\":0.000000,") != std::string::npos);
    // Prometheus has the ring in use's share only.
    CHECK(prom(metrics, "kvproxy_node_ownership_ratio{node=\"n2\"}") == prom_share(old->ownership[1]));
    CHECK(prom(metrics, "kvproxy_node_ownership_ratio{node=\"n1\"}") == prom_share(old->ownership[0]));
    const auto row2 = html_row(html, "n2");
    REQUIRE(row2);
    CHECK(row2->cells[c_id] == "n2");
    CHECK(row2->cells[c_ownership] == html_share(old->ownership[1]) + " &rarr; " + html_share(next2));
    const auto row1 = html_row(html, "n1");
    REQUIRE(row1);
    CHECK(row1->cells[c_ownership] == html_share(old->ownership[0]) + " &rarr; 0.00%");
    CHECK(row1->cells[c_total] == "17");  // its statistics stay while it leaves
  }
  SECTION("the rows: the ring in use, then the joining node") {
    const auto& nodes = doc.at("nodes").as_array();
    REQUIRE(nodes.size() == 3);
    CHECK(nodes[0].at("id").as_string() == "n1");
    CHECK(nodes[1].at("id").as_string() == "n2");
    CHECK(nodes[2].at("id").as_string() == "n3");
    CHECK(html.find("data-node=\"n2\"") < html.find("data-node=\"n3\""));
    CHECK(metrics.find("kvproxy_node_up{node=\"n2\"}") < metrics.find("kvproxy_node_up{node=\"n3\"}"));
  }
  SECTION("read_new") {
    auto next = std::make_shared<Migration>(*m);
    next->change.phase = Phase::read_new;
    f.cluster.publish(with_migration(*f.cluster.topology(), next));
    const Snapshot r = snapshot(f.cluster, f.counters);
    CHECK(json::parse(render_json(r)).at("rebalance").at("phase").as_string() == "read_new");
    CHECK(prom(render_prometheus(r), "kvproxy_rebalance_phase") == "2");
    CHECK(render_html(r).find("<b>rebalancing to ring " + m->fingerprint() + ", phase read_new</b>") != std::string::npos);

    SECTION("finished: the new ring alone, nobody joining, no next share") {
      f.cluster.publish(finished(*next));
      const Snapshot done = snapshot(f.cluster, f.counters);
      const std::string text = render_json(done);
      const json::value d2 = json::parse(text);
      CHECK(d2.at("rebalance").is_null());
      CHECK(d2.at("fingerprint").as_string() == m->fingerprint());
      CHECK(u(d2.at("version")) == 4);
      CHECK(d2.at("nodes").as_array().size() == 2);
      CHECK(text.find("next_ownership") == std::string::npos);
      CHECK(text.find("joining") == std::string::npos);
      CHECK(d(json_node(d2, "n3").at("ownership")) == json_share(next3));
      const std::string metrics2 = render_prometheus(done);
      CHECK(prom(metrics2, "kvproxy_rebalance_phase") == "0");
      CHECK_FALSE(prom(metrics2, "kvproxy_node_up{node=\"n1\"}"));
      CHECK(prom(metrics2, "kvproxy_node_ownership_ratio{node=\"n3\"}") == prom_share(next3));
      const std::string page = render_html(done);
      CHECK(page.find("rebalancing") == std::string::npos);
      CHECK(page.find("(joining)") == std::string::npos);
      CHECK(page.find("&rarr;") == std::string::npos);
      CHECK_FALSE(html_row(page, "n1"));
      CHECK(html_row(page, "n3")->cells[c_ownership] == html_share(next3));
      CHECK(page.find("ring version 4 (" + m->fingerprint() + ") &middot; 2 nodes &middot; 1280 ring points") !=
            std::string::npos);
    }
  }
}

TEST_CASE("render_ring_json: the ring in use, each node with its weight, share and state", "[stats]") {
  Fixture f;
  const auto t = f.cluster.topology();
  const std::string expected = "{\"version\":1,\"fingerprint\":\"" + t->fingerprint +
                               "\",\"vnodes\":256,\"points\":1024,\"nodes\":["
                               "{\"id\":\"n1\",\"address\":\"127.0.0.1:9001\",\"weight\":1,\"ownership\":" +
                               printed("%.6f", t->ownership[0]) +
                               ",\"state\":\"UP\"},"
                               "{\"id\":\"n2\",\"address\":\"127.0.0.1:9002\",\"weight\":3,\"ownership\":" +
                               printed("%.6f", t->ownership[1]) + ",\"state\":\"UP\"}]}";
  CHECK(render_ring_json(*t) == expected);
  const json::value doc = json::parse(render_ring_json(*t));
  CHECK(d(doc.at("nodes").at(0).at("ownership")) + d(doc.at("nodes").at(1).at("ownership")) == Approx(1.0).margin(2e-6));

  SECTION("a node down") {
    f.n1->up = false;
    CHECK(json::parse(render_ring_json(*t)).at("nodes").at(0).at("state").as_string() == "DOWN");
  }
  SECTION("during a rebalance: still the ring in use, without the joining node") {
    f.begin_rebalance(Phase::dual_write);
    const auto w = f.cluster.topology();
    std::string same = expected;
    same.replace(same.find("\"version\":1"), 11, "\"version\":2");
    CHECK(render_ring_json(*w) == same);
  }
  SECTION("an IPv6 node") {
    Cluster c{HealthSettings{}};
    c.publish(c.prepare(ring({{"v6", {"::1", 9006}, 1, {}}}), "ring.yaml"));
    const auto ring_json = render_ring_json(*c.topology());
    CHECK(ring_json.find("{\"id\":\"v6\",\"address\":\"[::1]:9006\",\"weight\":1,\"ownership\":1.000000,\"state\":\"UP\"}") !=
          std::string::npos);
    const Snapshot s = snapshot(c, f.counters);
    CHECK(json_node(json::parse(render_json(s)), "v6").at("address").as_string() == "[::1]:9006");
    CHECK(html_row(render_html(s), "v6")->cells[c_address] == "[::1]:9006");
    CHECK(prom(render_prometheus(s), "kvproxy_node_ownership_ratio{node=\"v6\"}") == "1");
  }
}

TEST_CASE("a replicated node's copy, from its /health: its state and anti-entropy figures in all three", "[stats]") {
  ReplicaHealth r;
  CHECK_FALSE(parse_replica_health(R"({"status":"ok","engine":"rocksdb","writable":true})", r));  // no replica
  CHECK_FALSE(parse_replica_health("not json", r));
  CHECK_FALSE(parse_replica_health(R"({"state":3})", r));
  REQUIRE(parse_replica_health(
      R"({"status":"ok","state":"recovering","tombstones":7,"floors":{"segments":5,"known":true,"peers_learned":2},)"
      R"("anti_entropy":{"keys_behind":40,"keys_repaired":350,)"
      R"("exchanges":12,"failures":1,"bytes":98765,"peers_in_sync":1,"peers":2,"tombstones_purged":9,)"
      R"("purges_paused":"c0ffee"}})",
      r));
  CHECK(r.state == "recovering");
  CHECK(r.keys_behind == 40);
  CHECK(r.keys_repaired == 350);
  CHECK(r.tombstones == 7);
  CHECK(r.tombstones_purged == 9);
  CHECK(r.floor_segments == 5);
  CHECK(r.peers_in_sync == 1);
  CHECK(r.peers == 2);
  CHECK(r.purges_paused == "c0ffee");

  Fixture f;
  {
    std::lock_guard lock(f.n2->mutex);
    f.n2->replica = r;
  }
  const Snapshot s = snapshot(f.cluster, f.counters);
  const json::value doc = json::parse(render_json(s));
  const auto& replica = json_node(doc, "n2").at("replica");
  CHECK(replica.at("state").as_string() == "recovering");
  CHECK(replica.at("keys_repaired").to_number<std::uint64_t>() == 350);
  CHECK(replica.at("tombstones").to_number<std::uint64_t>() == 7);
  CHECK(replica.at("tombstones_purged").to_number<std::uint64_t>() == 9);
  CHECK(replica.at("floor_segments").to_number<std::uint64_t>() == 5);
  CHECK(replica.at("purges_paused").as_string() == "c0ffee");
  CHECK_FALSE(json_node(doc, "n1").contains("replica"));
  const std::string metrics = render_prometheus(s);
  CHECK(prom(metrics, "kvproxy_node_replica_state{node=\"n2\",state=\"recovering\"}") == "1");
  CHECK(prom(metrics, "kvproxy_node_replica_state{node=\"n2\",state=\"serving\"}") == "0");
  CHECK(prom(metrics, "kvproxy_node_keys_behind{node=\"n2\"}") == "40");
  CHECK(prom(metrics, "kvproxy_node_keys_repaired_total{node=\"n2\"}") == "350");
  CHECK(prom(metrics, "kvproxy_node_tombstones{node=\"n2\"}") == "7");
  CHECK(prom(metrics, "kvproxy_node_tombstones_purged_total{node=\"n2\"}") == "9");
  CHECK(prom(metrics, "kvproxy_node_floor_segments{node=\"n2\"}") == "5");
  CHECK(prom(metrics, "kvproxy_node_purges_paused{node=\"n2\"}") == "1");
  CHECK(metrics.find("kvproxy_node_keys_behind{node=\"n1\"}") == std::string::npos);
  const std::string html = render_html(s);
  CHECK(html.find("<tr data-replica=\"n2\" data-replica-state=\"recovering\"><td class=\"id\">n2</td><td class=\"state\">"
                  "recovering</td><td>40</td><td>350</td><td>12</td><td>1</td><td>98.8</td><td>1 of 2</td><td>7</td><td>9 (paused for c0ffee)</td></tr>") !=
        std::string::npos);
  // Without any replicated node: no such table, no such series.
  Fixture plain;
  CHECK(render_html(snapshot(plain.cluster, plain.counters)).find("id=\"replicas\"") == std::string::npos);
  CHECK(render_prometheus(snapshot(plain.cluster, plain.counters)).find("kvproxy_node_replica_state") == std::string::npos);
}
