#include "tools/admin_client.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <optional>

#include "common/storage_key.hpp"
#include "common/transfer.hpp"

namespace kv::tools {
namespace {

namespace json = boost::json;
using rebalance::Drop;
using rebalance::Step;

// The reason an error answer gives: its JSON "detail", else the start of its body.
std::string detail_of(const HttpResponse& r) {
  boost::system::error_code ec;
  const auto v = json::parse(r.body, ec);
  if (!ec && v.is_object())
    if (const auto* d = v.as_object().if_contains("detail"); d && d->is_string()) return std::string(d->as_string());
  return r.body.substr(0, 200);
}

// A request under the policy: the answer when it is a 200, AdminError otherwise.
HttpResponse call(const Exchange& exchange, const RetryPolicy& retry, const std::string& label, std::string_view method,
                  std::string_view target, std::string_view body = {}, std::string_view content_type = "text/plain") {
  for (int attempt = 1;; ++attempt) {
    const auto pause = retry.pause * attempt;
    try {
      HttpResponse r = exchange(method, target, body, content_type);
      if (r.status == 503 && attempt < retry.attempts) {
        retry.log.line(label + ": " + detail_of(r) + "; retrying");
        retry.sleep(pause);
        continue;
      }
      if (r.status != 200)
        throw AdminError(label + ": " + std::string(method) + " " + std::string(target.substr(0, target.find('?'))) +
                         ": HTTP " + std::to_string(r.status) + ": " + detail_of(r));
      return r;
    } catch (const AdminError&) {
      throw;
    } catch (const std::exception& e) {
      if (attempt == retry.attempts) throw AdminError(label + ": " + e.what());
      retry.sleep(pause);
    }
  }
}

// A non-negative integer field of a JSON answer ({"keys": N}, {"written": N, ...}).
std::optional<std::uint64_t> count_field(std::string_view body, const char* name) {
  boost::system::error_code ec;
  const auto v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto* f = v.as_object().if_contains(name);
  if (!f || !f->is_int64() || f->as_int64() < 0) return std::nullopt;
  return static_cast<std::uint64_t>(f->as_int64());
}

// A scan's answer: the records are its body, the rest is in its header fields (rebalance.hpp).
std::optional<ScanBatch> parse_scan(HttpResponse&& r, std::string& error) {
  ScanBatch b;
  const std::string count = r.field(rebalance::kScanCountField);
  const bool digits = std::all_of(count.begin(), count.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || count.size() > 19) {
    error = "scan answered " + std::string(rebalance::kScanCountField) + ": " + count.substr(0, 40);
    return std::nullopt;
  }
  b.count = count.empty() ? 0 : std::stoull(count);  // absent: none
  b.done = r.field(rebalance::kScanDoneField) == "1";
  if (!b.done && (!parse_hex_bytes(r.field(rebalance::kScanCursorField), b.cursor) || b.cursor.size() < kStorageKeyPrefix)) {
    error = "scan answered without a valid cursor";
    return std::nullopt;
  }
  b.records = std::move(r.body);
  return b;
}

std::string ranges_body(std::span<const HashRange> ranges) {
  std::string body;
  for (const auto& r : ranges) append_range(body, r);
  return body;
}

// `ranges` in requests of at most kRangesPerRequest.
template <class F>
void in_chunks(std::span<const HashRange> ranges, F&& each) {
  for (std::size_t i = 0; i < ranges.size(); i += kRangesPerRequest)
    each(ranges.subspan(i, std::min(kRangesPerRequest, ranges.size() - i)));
}

}  // namespace

Exchange http_exchange(const HostPort& server, std::chrono::milliseconds timeout, const std::string& token) {
  auto client = std::make_shared<HttpClient>(server, timeout, token);
  return [client](std::string_view method, std::string_view target, std::string_view body, std::string_view content_type) {
    return client->request(method, target, body, content_type);
  };
}

ProxyAdmin::ProxyAdmin(HostPort address, Exchange exchange, RetryPolicy retry)
    : address_(std::move(address)), label_("proxy " + address_.str()), exchange_(std::move(exchange)), retry_(std::move(retry)) {}

rebalance::Position ProxyAdmin::position() {
  const auto r = call(exchange_, retry_, label_, "GET", rebalance::kMigrationPath);
  std::string error;
  auto p = rebalance::parse_position(r.body, error);
  if (!p) throw AdminError(label_ + ": GET " + std::string(rebalance::kMigrationPath) + ": " + error);
  return *p;
}

void ProxyAdmin::step(Step step, std::string_view fingerprint, std::string_view yaml) {
  call(exchange_, retry_, label_, "POST", rebalance::step_target(step, fingerprint), yaml, "application/yaml");
}

NodeAdmin::NodeAdmin(std::string id, HostPort address, Exchange exchange, RetryPolicy retry)
    : id_(std::move(id)), address_(std::move(address)), label_("node " + id_ + " (" + address_.str() + ")"),
      exchange_(std::move(exchange)), retry_(std::move(retry)) {}

NodeAdmin::Size NodeAdmin::sum_counts(const std::string& label, std::span<const HashRange> ranges, bool bytes) {
  Size size;
  in_chunks(ranges, [&](std::span<const HashRange> chunk) {
    const auto r = call(exchange_, retry_, label, "POST", rebalance::kCountPath, ranges_body(chunk));
    const auto keys = count_field(r.body, "keys");
    const auto b = bytes ? count_field(r.body, "bytes") : std::optional<std::uint64_t>(0);
    if (!keys || !b)
      throw AdminError(label + ": POST " + std::string(rebalance::kCountPath) + ": unexpected answer: " + r.body.substr(0, 200));
    size.keys += *keys;
    size.bytes += *b;
  });
  return size;
}

// Counting has always named the node without its address; kept, so that no message changes.
std::uint64_t NodeAdmin::count(std::span<const HashRange> ranges) { return sum_counts("node " + id_, ranges, false).keys; }

NodeAdmin::Size NodeAdmin::measure(std::span<const HashRange> ranges) { return sum_counts(label_, ranges, true); }

std::optional<std::string> NodeAdmin::ring_running() {
  const auto r = call(exchange_, retry_, label_, "GET", "/health", {});
  constexpr std::string_view field = "\"ring\":\"";
  const auto at = r.body.find(field);
  if (at == std::string::npos) return std::nullopt;
  const auto from = at + field.size(), to = r.body.find('"', from);
  return r.body.substr(from, to == std::string::npos ? std::string::npos : to - from);
}

std::optional<PurgeState> NodeAdmin::purge_state() {
  HttpResponse r;
  try {
    r = exchange_("GET", "/health", {}, "text/plain");
  } catch (const std::exception&) {
    return std::nullopt;  // not answering: it purges nothing while down
  }
  boost::system::error_code ec;
  const auto v = json::parse(r.body, ec);
  if (r.status != 200 || ec || !v.is_object()) return std::nullopt;
  const auto* ae = v.as_object().if_contains("anti_entropy");
  if (!ae || !ae->is_object()) return std::nullopt;
  const auto& o = ae->as_object();
  const auto text = [&o](const char* name) {
    const auto* f = o.if_contains(name);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  const auto* purging = o.if_contains("purging");
  return PurgeState{purging && purging->is_bool() && purging->as_bool(), text("purges_paused"), text("purges_resumed")};
}

namespace {

bool purges_request(const Exchange& exchange, const std::string& label, std::string_view param, std::string_view change) {
  HttpResponse r;
  try {
    r = exchange("POST", std::string(rebalance::kNodePurgesPath) + "?" + std::string(param) + "=" + std::string(change), {},
                 "text/plain");
  } catch (const std::exception&) {
    return false;  // not answering
  }
  if (r.status != 200)
    throw AdminError(label + ": POST " + std::string(rebalance::kNodePurgesPath) + "?" + std::string(param) + ": HTTP " +
                     std::to_string(r.status) + ": " + detail_of(r));
  return true;
}

}  // namespace

bool NodeAdmin::pause_purges(std::string_view change) { return purges_request(exchange_, label_, rebalance::kPauseParam, change); }
bool NodeAdmin::resume_purges(std::string_view change) { return purges_request(exchange_, label_, rebalance::kResumeParam, change); }

bool NodeAdmin::adopt_ring(std::string_view yaml) {
  const auto r = call(exchange_, retry_, label_, "POST", rebalance::kNodeRingPath, yaml, "application/yaml");
  // "adopting": in place (kvnode since 2026-12); "restarting": by starting again (kvnode before).
  return r.body.find("\"adopting\":true") != std::string::npos || r.body.find("\"restarting\":true") != std::string::npos;
}

bool NodeAdmin::poll_serving(std::string_view fingerprint, std::chrono::milliseconds timeout, std::string& last) {
  const std::string ring = "\"ring\":\"" + std::string(fingerprint) + "\"";
  const auto until = std::chrono::steady_clock::now() + timeout;
  last = "no answer";
  do {
    try {
      const HttpResponse r = exchange_("GET", "/health", {}, "text/plain");
      // On a ring with replicas 1 a node keeps no replica state (no anti-entropy): its ring is enough.
      const bool has_state = r.body.find("\"state\":") != std::string::npos;
      if (r.status == 200 && r.body.find(ring) != std::string::npos &&
          (!has_state || r.body.find("\"state\":\"serving\"") != std::string::npos))
        return true;
      last = "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
    } catch (const std::exception& e) {
      last = e.what();
    }
    retry_.sleep(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < until);
  return false;
}

void NodeAdmin::wait_serving(std::string_view fingerprint, std::chrono::milliseconds timeout) {
  std::string last;
  if (!poll_serving(fingerprint, timeout, last))
    throw AdminError(label_ + ": not serving again after adopting the new ring: " + last);
}

bool NodeAdmin::up_within(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  do {
    try {
      if (exchange_("GET", "/health", {}, "text/plain").status == 200) return true;
    } catch (const std::exception&) {
    }
    retry_.sleep(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < until);
  return false;
}

ScanBatch NodeAdmin::scan(std::span<const HashRange> ranges, std::size_t limit, std::size_t max_bytes, std::string_view after,
                          bool versions) {
  std::string error;
  auto batch = parse_scan(call(exchange_, retry_, label_, "POST", rebalance::scan_target(limit, max_bytes, hex_bytes(after), versions),
                               ranges_body(ranges)),
                          error);
  if (!batch) throw AdminError(label_ + ": " + error);
  return std::move(*batch);
}

std::uint64_t NodeAdmin::ingest(std::string_view records, bool versions) {
  const auto r = call(exchange_, retry_, label_, "POST", rebalance::ingest_target(versions), records, "application/octet-stream");
  const auto n = count_field(r.body, "written");
  if (!n) throw AdminError(label_ + ": POST " + std::string(rebalance::kIngestPath) + ": unexpected answer: " + r.body.substr(0, 200));
  return *n;
}

void NodeAdmin::drop(Drop what, std::span<const HashRange> ranges) {
  in_chunks(ranges, [&](std::span<const HashRange> chunk) {
    call(exchange_, retry_, label_, "POST", rebalance::drop_target(what), ranges_body(chunk));
  });
}

NodeAdmin& NodeAdmins::node(const std::string& id, const HostPort& address) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) it = nodes_.try_emplace(id, id, address, connect_(address), retry_).first;
  return it->second;
}

}  // namespace kv::tools
