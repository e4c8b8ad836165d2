#include "node/api.hpp"

#include <boost/beast/http/field.hpp>

#include "common/auth.hpp"
#include "common/json.hpp"
#include "common/key.hpp"
#include "common/storage_key.hpp"
#include "common/transfer.hpp"

#include <charconv>

namespace kv {
namespace {

void json_response(Response& res, beast::http::status status, std::string body) {
  res.result(status);
  res.set(beast::http::field::content_type, "application/json");
  res.body() = std::move(body);
}

// HEAD goes wherever GET does (RFC 9110 9.1); the session sends its answer without the body.
bool method_allowed(Response& res, beast::http::verb got, beast::http::verb want, std::string_view allow) {
  if (got == want || (want == beast::http::verb::get && got == beast::http::verb::head)) return true;
  error_response(res, beast::http::status::method_not_allowed, "Method not allowed");
  res.set(beast::http::field::allow, allow);
  return false;
}

}  // namespace

void error_response(Response& res, beast::http::status status, std::string_view detail) {
  json_response(res, status, json_error(detail));
}

Route Api::route_of(std::string_view target) noexcept {
  const auto path = target_path(target);
  if (path == "/get") return Route::get;
  if (path == "/put") return Route::put;
  if (path == "/del") return Route::del;
  if (path == "/health") return Route::health;
  if (path == "/metrics") return Route::metrics;
  if (path.starts_with("/admin/")) return Route::admin;
  return Route::other;
}

Route Api::handle(const Request& req, Response& res, std::optional<WriteOp>* deferred) {
  const Route route = route_of(req.target());
  res.version(req.version());
  if (!node_id_.empty()) res.set("X-KV-Node", node_id_);
  switch (route) {
    case Route::other:
      error_response(res, beast::http::status::not_found, "Not found");
      return route;
    case Route::health:
      if (method_allowed(res, req.method(), beast::http::verb::get, "GET, HEAD")) {
        const auto write_error = store_.write_error();
        json_response(res, beast::http::status::ok,
                      R"({"status":"ok","engine":")" + std::string(store_.engine()) + "\",\"writable\":" +
                          (write_error.empty() ? "true" : "false,\"detail\":" + json_quote(write_error)) + "}");
      }
      return route;
    case Route::metrics:
      if (method_allowed(res, req.method(), beast::http::verb::get, "GET, HEAD")) {
        res.result(beast::http::status::ok);
        res.set(beast::http::field::content_type, "text/plain; version=0.0.4");
        res.body() = metrics_.render(store_);
      }
      return route;
    case Route::admin:
      handle_admin(req, res);
      return route;
    case Route::put:
      if (!method_allowed(res, req.method(), beast::http::verb::post, "POST")) return route;
      break;
    case Route::get:
      if (!method_allowed(res, req.method(), beast::http::verb::get, "GET, HEAD")) return route;
      break;
    case Route::del:
      if (!method_allowed(res, req.method(), beast::http::verb::delete_, "DELETE")) return route;
      break;
    default: break;
  }

  KeyResult key = extract_key(req.target(), limits_.max_key_bytes);
  if (key.error != KeyError::none) {
    error_response(res, key.error == KeyError::too_long ? beast::http::status::payload_too_large : beast::http::status::bad_request,
                   key_error_detail(key.error));
    return route;
  }
  std::string skey = storage_key(key.key);
  std::string err;

  if (route == Route::put) {
    std::string value, detail;
    if (!parse_put_body(req.body(), value, detail)) {
      error_response(res, beast::http::status::bad_request, detail);
      return route;
    }
    if (value.size() > limits_.max_value_bytes) {
      error_response(res, beast::http::status::payload_too_large,
                     "Value too large (limit " + std::to_string(limits_.max_value_bytes) + " bytes)");
      return route;
    }
    WriteOp op{WriteOp::Kind::put, std::move(skey), std::move(value)};
    if (deferred && store_.group_commit()) {
      *deferred = std::move(op);
      return route;
    }
    WriteResult r;
    r.status = store_.put(op.key, op.value, r.err);
    finish_write(op.kind, r, res);
    return route;
  }

  if (route == Route::get) {
    std::string value;
    switch (store_.get(skey, value, err)) {
      case StoreStatus::ok: json_response(res, beast::http::status::ok, json_value(value)); break;
      case StoreStatus::not_found: error_response(res, beast::http::status::not_found, "Key not found"); break;
      case StoreStatus::error:
        metrics_.store_error();
        error_response(res, beast::http::status::internal_server_error, "Storage read failed: " + err);
        break;
    }
    return route;
  }

  // A rebalance in progress: the proxy asks the key's new owner to remember the delete, so that the
  // copy of the key's old value, maybe already on its way, is not stored after it.
  const bool tombstone = req["X-KV-Tombstone"] == "1";
  WriteOp op{WriteOp::Kind::del, std::move(skey), {}, tombstone};
  if (deferred && store_.group_commit()) {
    *deferred = std::move(op);
    return route;
  }
  WriteResult r;
  r.status = store_.del(op.key, op.tombstone, r.err);
  finish_write(op.kind, r, res);
  return route;
}

namespace {

// A positive number in [1, max], or `fallback` when absent. False when malformed or out of range.
bool number_param(std::string_view target, std::string_view name, std::size_t fallback, std::size_t max,
                  std::size_t& out) {
  const auto v = query_value(target, name);
  if (v.empty()) {
    out = fallback;
    return true;
  }
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && p == v.data() + v.size() && out >= 1 && out <= max;
}

}  // namespace

void Api::handle_admin(const Request& req, Response& res) {
  const auto target = std::string_view(req.target().data(), req.target().size());
  const auto path = target_path(target);
  const std::string_view body(req.body().data(), req.body().size());
  if (!admin_token_.empty()) {
    const auto auth = req[beast::http::field::authorization];
    switch (check_bearer(std::string_view(auth.data(), auth.size()), admin_token_)) {
      case AuthResult::ok: break;
      case AuthResult::missing:
        error_response(res, beast::http::status::unauthorized, "This endpoint needs Authorization: Bearer <token>");
        res.set(beast::http::field::www_authenticate, "Bearer realm=\"kvnode admin\"");
        return;
      case AuthResult::wrong:
        error_response(res, beast::http::status::forbidden, "Wrong token");
        return;
    }
  }
  if (path != "/admin/scan" && path != "/admin/count" && path != "/admin/ingest" && path != "/admin/drop") {
    error_response(res, beast::http::status::not_found, "Not found");
    return;
  }
  if (!method_allowed(res, req.method(), beast::http::verb::post, "POST")) return;
  std::string err;
  auto store_failed = [&](std::string_view what) {
    metrics_.store_error();
    error_response(res, beast::http::status::internal_server_error, std::string(what) + ": " + err);
  };

  if (path == "/admin/ingest") {
    std::vector<Record> records;
    if (!parse_records(body, records, err)) {
      error_response(res, beast::http::status::bad_request, err);
      return;
    }
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (read_be64(records[i].key) != hash_key(user_key(records[i].key))) {
        error_response(res, beast::http::status::bad_request,
                       "records: entry " + std::to_string(i + 1) + ": hash prefix does not match the key");
        return;
      }
    }
    std::size_t written = 0;
    if (store_.ingest(records, written, err) != StoreStatus::ok) return store_failed("Storage ingest failed");
    json_response(res, beast::http::status::ok,
                  "{\"status\":\"success\",\"written\":" + std::to_string(written) +
                      ",\"skipped\":" + std::to_string(records.size() - written) + "}");
    return;
  }

  std::vector<HashRange> ranges;
  if (!parse_ranges(body, ranges, err)) {
    error_response(res, beast::http::status::bad_request, err);
    return;
  }
  if (path == "/admin/count") {
    std::uint64_t n = 0;
    if (store_.count(ranges, n, err) != StoreStatus::ok) return store_failed("Storage scan failed");
    json_response(res, beast::http::status::ok, "{\"status\":\"success\",\"keys\":" + std::to_string(n) + "}");
    return;
  }
  if (path == "/admin/drop") {
    const auto what = query_value(target, "what");
    if (what != "data" && what != "tombstones" && what != "all") {
      error_response(res, beast::http::status::bad_request, "what: expected data, tombstones or all");
      return;
    }
    if (store_.drop(ranges, what != "tombstones", what != "data", err) != StoreStatus::ok)
      return store_failed("Storage drop failed");
    json_response(res, beast::http::status::ok, json_success());
    return;
  }
  // scan
  std::size_t limit = 0, max_bytes = 0;
  if (!number_param(target, "limit", kDefaultScanLimit, kMaxScanLimit, limit)) {
    error_response(res, beast::http::status::bad_request, "limit: expected 1.." + std::to_string(kMaxScanLimit));
    return;
  }
  if (!number_param(target, "max_bytes", kDefaultScanBytes, kMaxScanBytes, max_bytes)) {
    error_response(res, beast::http::status::bad_request, "max_bytes: expected 1.." + std::to_string(kMaxScanBytes));
    return;
  }
  std::string after;
  if (!parse_hex_bytes(query_value(target, "after"), after) || (!after.empty() && after.size() < kStorageKeyPrefix)) {
    error_response(res, beast::http::status::bad_request, "after: expected a stored key in hex (at least 16 digits)");
    return;
  }
  ScanBatch batch;
  if (store_.scan(ranges, after, limit, max_bytes, batch, err) != StoreStatus::ok) return store_failed("Storage scan failed");
  res.result(beast::http::status::ok);
  res.set(beast::http::field::content_type, "application/octet-stream");
  res.set("X-KV-Scan-Count", std::to_string(batch.count));
  res.set("X-KV-Scan-Done", batch.done ? "1" : "0");
  if (!batch.last_key.empty()) res.set("X-KV-Scan-Cursor", hex_bytes(batch.last_key));
  res.body() = std::move(batch.records);
}

void Api::finish_write(WriteOp::Kind kind, const WriteResult& result, Response& res) {
  const bool put = kind == WriteOp::Kind::put;
  switch (result.status) {
    case StoreStatus::ok: json_response(res, beast::http::status::ok, json_success()); break;
    case StoreStatus::not_found: error_response(res, beast::http::status::not_found, "Key not found"); break;
    case StoreStatus::error:
      metrics_.store_error();
      error_response(res, beast::http::status::internal_server_error,
                     std::string(put ? "Storage write failed: " : "Storage delete failed: ") + result.err);
      break;
  }
}

}  // namespace kv
