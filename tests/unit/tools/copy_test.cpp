#include <catch2/catch.hpp>

#include <map>
#include <sstream>

#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "tools/copy.hpp"

using namespace kv;
using namespace kv::tools;

namespace {

// A node's admin endpoints over a map of stored keys, answering as kvnode does (node/api.cpp and
// the memory store), enough for the copy: count, scan with limit and cursor, ingest if absent.
struct FakeNode {
  std::map<std::string, std::string> data;
  std::size_t scans = 0;

  static std::string param(std::string_view target, std::string_view name) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const auto item = rest.substr(0, amp);
      if (item.starts_with(name) && item.size() > name.size() && item[name.size()] == '=')
        return std::string(item.substr(name.size() + 1));
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    }
    return {};
  }

  HttpResponse handle(std::string_view target, std::string_view body) {
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/admin/ingest") {
      std::vector<Record> records;
      std::string error;
      REQUIRE(parse_records(body, records, error));
      std::size_t written = 0;
      for (const auto& r : records) written += data.try_emplace(std::string(r.key), std::string(r.value)).second;
      return {200, R"({"status":"success","written":)" + std::to_string(written) + "}", {}};
    }
    std::vector<HashRange> ranges;
    std::string error;
    REQUIRE(parse_ranges(body, ranges, error));
    REQUIRE(ranges.size() <= 4096);
    if (path == "/admin/count") {
      std::size_t n = 0;
      for (const auto& r : ranges)
        for (const auto& [k, v] : data) n += read_be64(k) >= r.lo && read_be64(k) <= r.hi;
      return {200, R"({"status":"success","keys":)" + std::to_string(n) + "}", {}};
    }
    REQUIRE(path == "/admin/scan");
    ++scans;
    const std::size_t limit = std::stoul(param(target, "limit")), max_bytes = std::stoul(param(target, "max_bytes"));
    std::string after;
    REQUIRE(parse_hex_bytes(param(target, "after"), after));
    if (!after.empty()) {  // the copy starts each request at the range its cursor is in, not before
      CHECK(ranges.front().lo <= read_be64(after));
      CHECK(read_be64(after) <= ranges.front().hi);
    }
    std::string records, last;
    std::size_t count = 0;
    for (const auto& r : ranges) {
      for (const auto& [k, v] : data) {
        const auto h = read_be64(k);
        if (h < r.lo || h > r.hi || (!after.empty() && k <= after)) continue;
        if (count == limit || (count > 0 && records.size() >= max_bytes))
          return {200, records, {{"X-KV-Scan-Count", std::to_string(count)}, {"X-KV-Scan-Done", "0"},
                                 {"X-KV-Scan-Cursor", hex_bytes(last)}}};
        append_record(records, k, v);
        last = k;
        ++count;
      }
    }
    return {200, records, {{"X-KV-Scan-Count", std::to_string(count)}, {"X-KV-Scan-Done", "1"}}};
  }
};

struct Cluster {
  std::map<std::uint16_t, FakeNode> by_port;
  NodeAdmins admins() {
    return NodeAdmins(
        [this](const HostPort& a) -> Exchange {
          FakeNode* n = &by_port[a.port];
          return [n](std::string_view, std::string_view t, std::string_view b, std::string_view) { return n->handle(t, b); };
        },
        RetryPolicy{});
  }
};

// Ranges [i*1000, i*1000+499]; keys at the start, the middle and the end of some, and between them.
std::vector<HashRange> spaced_ranges(std::size_t n) {
  std::vector<HashRange> out;
  for (std::uint64_t i = 0; i < n; ++i) out.push_back({i * 1000, i * 1000 + 499});
  return out;
}

}  // namespace

TEST_CASE("copy: every key of the ranges, across windows of 4096 ranges and many batches, once", "[copy]") {
  Cluster c;
  FakeNode& src = c.by_port[8081];
  std::size_t inside = 0;
  for (std::uint64_t i = 0; i < 5000; i += 7) {
    for (std::uint64_t off : {0, 250, 499}) {
      src.data[storage_key("k" + std::to_string(i) + "." + std::to_string(off), i * 1000 + off)] = "v";
      ++inside;
    }
    src.data[storage_key("outside" + std::to_string(i), i * 1000 + 700)] = "no";  // between ranges: stays
  }
  FakeNode& dst = c.by_port[8082];
  const std::string already = storage_key("k7.250", 7250);
  dst.data[already] = "newer";  // a client's write during dual_write wins over the copy

  const std::vector<Flow> flows{{"n1", "n2", {"127.0.0.1", 8081}, {"127.0.0.1", 8082}, spaced_ranges(5000)}};
  auto admins = c.admins();
  std::ostringstream out;
  Progress progress{Log(out), false};
  const CopyResult r = copy_flows(flows, admins, CopyOptions{7, 1 << 20, 0}, progress, Log(out));

  CHECK(r.flows.size() == 1);
  CHECK(r.flows[0].keys == inside);
  CHECK(r.keys == inside);  // each key read once: no batch repeated, none skipped
  CHECK(r.flows[0].written == inside - 1);
  CHECK(dst.data.size() == inside);
  CHECK(dst.data[already] == "newer");
  for (const auto& [k, v] : dst.data) CHECK(user_key(k).starts_with("k"));
  CHECK(src.scans >= inside / 7);
  CHECK(out.str().starts_with("ring-rebalance: step: copying " + std::to_string(inside) + " keys in 1 flows\n"));
  CHECK(out.str().find("copy: 100% " + std::to_string(inside) + "/" + std::to_string(inside) + " keys") != std::string::npos);
}

TEST_CASE("copy: a batch cut by bytes resumes after its last key, within the same range", "[copy]") {
  Cluster c;
  FakeNode& src = c.by_port[8081];
  for (int i = 0; i < 20; ++i) src.data[storage_key("key" + std::to_string(100 + i), 5)] = std::string(100, 'v');  // one hash
  const std::vector<Flow> flows{{"n1", "n2", {"127.0.0.1", 8081}, {"127.0.0.1", 8082}, {{0, 9}}}};
  auto admins = c.admins();
  std::ostringstream out;
  Progress progress{Log(out), false};
  const CopyResult r = copy_flows(flows, admins, CopyOptions{1000, 300, 0}, progress, Log(out));
  CHECK(r.keys == 20);
  CHECK(r.flows[0].written == 20);
  CHECK(c.by_port[8082].data == src.data);
  CHECK(src.scans == 7);  // 3 records of ~120 bytes reach 300; 20 keys in 7 batches
}

TEST_CASE("copy: flows in order, each counted before any is copied", "[copy]") {
  Cluster c;
  c.by_port[8081].data[storage_key("a", 10)] = "1";
  c.by_port[8083].data[storage_key("b", 20)] = "2";
  c.by_port[8083].data[storage_key("c", 21)] = "3";
  const std::vector<Flow> flows{{"n1", "n2", {"127.0.0.1", 8081}, {"127.0.0.1", 8082}, {{0, 15}}},
                                {"n3", "n2", {"127.0.0.1", 8083}, {"127.0.0.1", 8082}, {{16, 30}}}};
  auto admins = c.admins();
  std::ostringstream out;
  Progress progress{Log(out), false};
  const CopyResult r = copy_flows(flows, admins, CopyOptions{}, progress, Log(out));
  REQUIRE(r.flows.size() == 2);
  CHECK((r.flows[0].keys == 1 && r.flows[0].written == 1));
  CHECK((r.flows[1].keys == 2 && r.flows[1].written == 2));
  CHECK(c.by_port[8082].data.size() == 3);
  CHECK(out.str().starts_with("ring-rebalance: step: copying 3 keys in 2 flows\n"));
}

TEST_CASE("throttle: wait until the keys copied are no longer ahead of the rate", "[copy]") {
  CHECK(throttle_seconds(1000, 0.5, 0) == 0);       // no limit
  CHECK(throttle_seconds(300, 0.5, 300) == Approx(0.5));
  CHECK(throttle_seconds(300, 1.0, 300) == 0);      // on time
  CHECK(throttle_seconds(300, 2.0, 300) == 0);      // behind: no catching up by bursts, but no wait
  CHECK(throttle_seconds(50, 0.0, 100) == Approx(0.5));
}
