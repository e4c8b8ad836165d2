// The rebalancer's endpoints under /admin/ (node/admin_api.hpp): each checks its parameters, then
// asks the store; every refusal is a 4xx with an exact detail, which ring-rebalance reports as is.
// Scan and ingest speak plain records, or with versions=1 versioned ones (tags and tombstones).
#include "node/admin_api.hpp"

#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <vector>

#include "common/auth.hpp"
#include "common/json.hpp"
#include "common/key.hpp"
#include "common/rebalance.hpp"
#include "common/storage_key.hpp"
#include "common/transfer.hpp"

namespace kv {
namespace {

using beast::http::status;

// A decimal number in [lo, hi], the whole of `v`.
template <class N>
bool number_in(std::string_view v, N lo, N hi, N& out) {
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && p == v.data() + v.size() && out >= lo && out <= hi;
}

// A positive number in [1, max], or `fallback` when absent. False when malformed or out of range.
bool number_param(std::string_view target, std::string_view name, std::size_t fallback, std::size_t max,
                  std::size_t& out) {
  const auto v = query_value(target, name);
  if (v.empty()) {
    out = fallback;
    return true;
  }
  return number_in<std::size_t>(v, 1, max, out);
}

// versions=1 (versioned records), or absent (plain records). False for any other value.
bool versions_param(std::string_view target, bool& versioned) {
  const auto v = query_value(target, rebalance::kVersionsParam);
  versioned = v == "1";
  return v.empty() || versioned;
}

constexpr std::string_view kBadVersions = "versions: expected 1";

}  // namespace

void AdminApi::handle(const http::StringRequest& req, http::StringResponse& res) {
  const auto target = std::string_view(req.target().data(), req.target().size());
  const auto path = target_path(target);
  if (!authorized(req, res)) return;
  const bool ring = path == rebalance::kNodeRingPath && adopt_ring_;
  const bool purges = path == rebalance::kNodePurgesPath && pause_;
  const bool repair = path == kRepairPath && rate_;
  if (path != rebalance::kScanPath && path != rebalance::kCountPath && path != rebalance::kIngestPath &&
      path != rebalance::kDropPath && !ring && !purges && !repair) {
    http::error_answer(res, status::not_found, "Not found");
    return;
  }
  if (!http::allow_method(res, req.method(), beast::http::verb::post, "POST")) return;
  const std::string_view body(req.body().data(), req.body().size());
  if (ring) {
    auto [code, answer] = adopt_ring_(body);
    return http::json_answer(res, static_cast<status>(code), std::move(answer));
  }
  if (purges) return this->purges(target, res);
  if (repair) return this->repair(target, res);
  if (path == rebalance::kIngestPath) return ingest(target, body, res);

  // The others take a range list, checked before their own parameters.
  std::vector<HashRange> ranges;
  std::string err;
  if (!parse_ranges(body, ranges, err)) return http::error_answer(res, status::bad_request, err);
  if (path == rebalance::kCountPath) return count(ranges, res);
  if (path == rebalance::kDropPath) return drop(target, ranges, res);
  scan(target, ranges, res);
}

bool AdminApi::authorized(const http::StringRequest& req, http::StringResponse& res) const {
  if (token_.empty()) return true;
  const auto auth = req[beast::http::field::authorization];
  switch (check_bearer(std::string_view(auth.data(), auth.size()), token_)) {
    case AuthResult::ok: return true;
    case AuthResult::missing:
      http::error_answer(res, status::unauthorized, "This endpoint needs Authorization: Bearer <token>");
      res.set(beast::http::field::www_authenticate, "Bearer realm=\"kvnode admin\"");
      return false;
    case AuthResult::wrong:
      http::error_answer(res, status::forbidden, "Wrong token");
      return false;
  }
  return false;
}

void AdminApi::ingest(std::string_view target, std::string_view body, http::StringResponse& res) {
  bool versioned = false;
  if (!versions_param(target, versioned)) return http::error_answer(res, status::bad_request, kBadVersions);
  std::vector<Record> records;
  std::string err;
  if (!parse_records(body, records, err, versioned)) return http::error_answer(res, status::bad_request, err);
  // A record under the wrong hash would be stored where no scan of its arc finds it again.
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (read_be64(records[i].key) != hash_key(user_key(records[i].key)))
      return http::error_answer(res, status::bad_request,
                            "records: entry " + std::to_string(i + 1) + ": hash prefix does not match the key");
  }
  std::size_t written = 0, conflicts = 0;
  if (store_.ingest(records, written, conflicts, err) != StoreStatus::ok) return store_failed(res, "Storage ingest failed", err);
  const std::size_t skipped = records.size() - written - conflicts;
  metrics_.version_conflicts(conflicts);
  if (versioned) metrics_.writes_superseded(skipped);  // a plain record skipped is a copy the node already has
  http::json_answer(res, status::ok,
                "{\"status\":\"success\",\"written\":" + std::to_string(written) + ",\"skipped\":" + std::to_string(skipped) +
                    ",\"conflicts\":" + std::to_string(conflicts) + "}");
}

// ?pause=CHANGE: answers once no purge of this node is under way, none to start until ?resume=CHANGE.
// A resume names the change it ends, so that a rebalancer of an older change cannot end a newer one's
// pause. The change is ring-rebalance's id (OLD-NEW.G: tools/resume.hpp, change_id), or any name of
// [0-9A-Za-z._-], 1 to 64 characters.
void AdminApi::purges(std::string_view target, http::StringResponse& res) {
  const auto pause = query_value(target, rebalance::kPauseParam), resume = query_value(target, rebalance::kResumeParam);
  const auto well_formed = [](std::string_view change) {
    return !change.empty() && change.size() <= 64 && std::all_of(change.begin(), change.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
  };
  if (pause.empty() == resume.empty() || !well_formed(pause.empty() ? resume : pause))
    return http::error_answer(res, status::bad_request,
                              "expected pause=CHANGE or resume=CHANGE, one of them (CHANGE: 1 to 64 of 0-9 A-Z a-z . _ -)");
  try {
    if (!pause.empty()) {
      pause_->pause(pause);
    } else if (!pause_->resume(resume)) {
      return http::error_answer(res, status::conflict,
                                "purges are paused for the ring change " + pause_->paused() + ", not " +
                                    std::string(resume) + ": resumed by that change's rebalancer only");
    }
  } catch (const StoreError& e) {
    return store_failed(res, "Storage write failed", e.what());
  }
  http::json_answer(res, status::ok, "{\"status\":\"success\",\"purges_paused\":" + pause_->paused_json() + "}");
}

// ?busy_percent=P (1 to 100) and/or ?keys_per_second=K (0: no bound): the anti-entropy pull's
// bounds from now on, as kvnode --repair-busy-percent and --repair-keys-per-second set them at the
// start. Answers both as they then are; /health shows them too. Not durable: a restart takes the flags.
void AdminApi::repair(std::string_view target, http::StringResponse& res) {
  const auto busy = query_value(target, "busy_percent"), keys = query_value(target, "keys_per_second");
  std::uint32_t b = 0, k = 0;
  if ((busy.empty() && keys.empty()) || (!busy.empty() && !number_in<std::uint32_t>(busy, 1, 100, b)) ||
      (!keys.empty() && !number_in<std::uint32_t>(keys, 0, UINT32_MAX, k)))
    return http::error_answer(res, status::bad_request,
                              "expected busy_percent=1..100 and/or keys_per_second=0..4294967295 (0: no bound)");
  if (!busy.empty()) rate_->set_busy_percent(b);
  if (!keys.empty()) rate_->set_keys_per_second(k);
  http::json_answer(res, status::ok,
                    "{\"status\":\"success\",\"busy_percent\":" + std::to_string(rate_->busy_percent()) +
                        ",\"keys_per_second\":" + std::to_string(rate_->keys_per_second()) + "}");
}

void AdminApi::count(std::span<const HashRange> ranges, http::StringResponse& res) {
  Store::Size size;
  std::string err;
  if (store_.measure(ranges, size, err) != StoreStatus::ok) return store_failed(res, "Storage scan failed", err);
  http::json_answer(res, status::ok, "{\"status\":\"success\",\"keys\":" + std::to_string(size.keys) +
                                         ",\"bytes\":" + std::to_string(size.bytes) + "}");
}

void AdminApi::drop(std::string_view target, std::span<const HashRange> ranges, http::StringResponse& res) {
  const auto what = rebalance::parse_drop(query_value(target, rebalance::kWhatParam));
  if (!what) return http::error_answer(res, status::bad_request, "what: expected data, tombstones or all");
  std::string err;
  const bool data = *what != rebalance::Drop::tombstones, tombstones = *what != rebalance::Drop::data;
  if (store_.drop(ranges, data, tombstones, err) != StoreStatus::ok) return store_failed(res, "Storage drop failed", err);
  http::json_answer(res, status::ok, json_success());
}

void AdminApi::scan(std::string_view target, std::span<const HashRange> ranges, http::StringResponse& res) {
  std::size_t limit = 0, max_bytes = 0;
  if (!number_param(target, rebalance::kLimitParam, kDefaultScanLimit, kMaxScanLimit, limit))
    return http::error_answer(res, status::bad_request, "limit: expected 1.." + std::to_string(kMaxScanLimit));
  if (!number_param(target, rebalance::kMaxBytesParam, kDefaultScanBytes, kMaxScanBytes, max_bytes))
    return http::error_answer(res, status::bad_request, "max_bytes: expected 1.." + std::to_string(kMaxScanBytes));
  std::string after;
  if (!parse_hex_bytes(query_value(target, rebalance::kAfterParam), after) || (!after.empty() && after.size() < kStorageKeyPrefix))
    return http::error_answer(res, status::bad_request, "after: expected a stored key in hex (at least 16 digits)");
  bool versioned = false;
  if (!versions_param(target, versioned)) return http::error_answer(res, status::bad_request, kBadVersions);
  ScanBatch batch;
  std::string err;
  if (store_.scan(ranges, after, limit, max_bytes, versioned, batch, err) != StoreStatus::ok)
    return store_failed(res, "Storage scan failed", err);
  res.result(status::ok);
  res.set(beast::http::field::content_type, "application/octet-stream");
  res.set(rebalance::kScanCountField, std::to_string(batch.count));
  res.set(rebalance::kScanDoneField, batch.done ? "1" : "0");
  if (!batch.last_key.empty()) res.set(rebalance::kScanCursorField, hex_bytes(batch.last_key));
  res.body() = std::move(batch.records);
}

void AdminApi::store_failed(http::StringResponse& res, std::string_view what, std::string_view err) {
  metrics_.store_error();
  http::error_answer(res, status::internal_server_error, std::string(what) + ": " + std::string(err));
}

}  // namespace kv
