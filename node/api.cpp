// The client API's answers (node/api.hpp): route, method, key, then the store. Each refusal is a
// 4xx with the exact detail the README's API table promises; only the storage engine gives a 5xx.
#include "node/api.hpp"

#include <boost/beast/http/field.hpp>

#include "common/json.hpp"
#include "common/key.hpp"
#include "common/rebalance.hpp"
#include "common/storage_key.hpp"
#include "http/policy.hpp"

namespace kv {

using beast::http::status;
using beast::http::verb;

Route Api::route_of(std::string_view target) noexcept {
  const auto path = target_path(target);
  if (path == "/get") return Route::get;
  if (path == "/put") return Route::put;
  if (path == "/del") return Route::del;
  if (path == http::kHealthPath) return Route::health;
  if (path == http::kMetricsPath) return Route::metrics;
  if (path.starts_with(rebalance::kAdminPrefix)) return Route::admin;
  return Route::other;
}

Route Api::handle(const http::StringRequest& req, http::StringResponse& res, std::optional<WriteOp>* deferred) {
  const Route route = route_of(req.target());
  res.version(req.version());
  if (!node_id_.empty()) res.set(http::kNodeField, node_id_);
  switch (route) {
    case Route::other:
      http::error_answer(res, status::not_found, http::kNotFound);
      return route;
    case Route::health:
      if (http::allow_method(res, req.method(), verb::get, http::kReadMethods)) {
        const auto write_error = store_.write_error();
        http::json_answer(res, status::ok,
                          R"({"status":"ok","engine":")" + std::string(store_.engine()) + "\",\"writable\":" +
                              (write_error.empty() ? "true" : "false,\"detail\":" + json_quote(write_error)) + "}");
      }
      return route;
    case Route::metrics:
      if (http::allow_method(res, req.method(), verb::get, http::kReadMethods)) {
        res.result(status::ok);
        res.set(beast::http::field::content_type, http::kPrometheusText);
        res.body() = metrics_.render(store_);
      }
      return route;
    case Route::admin:
      admin_.handle(req, res);
      return route;
    case Route::put:
      if (!http::allow_method(res, req.method(), verb::post, "POST")) return route;
      break;
    case Route::get:
      if (!http::allow_method(res, req.method(), verb::get, http::kReadMethods)) return route;
      break;
    case Route::del:
      if (!http::allow_method(res, req.method(), verb::delete_, "DELETE")) return route;
      break;
    default: break;
  }

  KeyResult key = extract_key(req.target(), limits_.max_key_bytes);
  if (key.error != KeyError::none) {
    http::error_answer(res, key.error == KeyError::too_long ? status::payload_too_large : status::bad_request,
                       key_error_detail(key.error));
    return route;
  }
  if (route == Route::get) get(storage_key(key.key), res);
  else write(route, req, storage_key(key.key), res, deferred);
  return route;
}

void Api::get(const std::string& skey, http::StringResponse& res) {
  std::string value, err;
  switch (store_.get(skey, value, err)) {
    case StoreStatus::ok: http::json_answer(res, status::ok, json_value(value)); break;
    case StoreStatus::not_found: http::error_answer(res, status::not_found, "Key not found"); break;
    case StoreStatus::error:
      metrics_.store_error();
      http::error_answer(res, status::internal_server_error, "Storage read failed: " + err);
      break;
  }
}

void Api::write(Route route, const http::StringRequest& req, std::string skey, http::StringResponse& res, std::optional<WriteOp>* deferred) {
  WriteOp op{WriteOp::Kind::put, std::move(skey), {}, false};
  if (route == Route::put) {
    std::string detail;
    if (!parse_put_body(req.body(), op.value, detail)) return http::error_answer(res, status::bad_request, detail);
    if (op.value.size() > limits_.max_value_bytes)
      return http::error_answer(res, status::payload_too_large,
                            "Value too large (limit " + std::to_string(limits_.max_value_bytes) + " bytes)");
  } else {
    op.kind = WriteOp::Kind::del;
    // A rebalance in progress: the proxy asks the key's new owner to remember the delete, so that the
    // copy of the key's old value, maybe already on its way, is not stored after it.
    op.tombstone = req[rebalance::kTombstoneField] == "1";
  }
  if (deferred && store_.group_commit()) {
    *deferred = std::move(op);
    return;
  }
  WriteResult r;
  r.status = op.kind == WriteOp::Kind::put ? store_.put(op.key, op.value, r.err) : store_.del(op.key, op.tombstone, r.err);
  finish_write(op.kind, r, res);
}

void Api::finish_write(WriteOp::Kind kind, const WriteResult& result, http::StringResponse& res) {
  const bool put = kind == WriteOp::Kind::put;
  switch (result.status) {
    case StoreStatus::ok: http::json_answer(res, status::ok, json_success()); break;
    case StoreStatus::not_found: http::error_answer(res, status::not_found, "Key not found"); break;
    case StoreStatus::error:
      metrics_.store_error();
      http::error_answer(res, status::internal_server_error,
                     std::string(put ? "Storage write failed: " : "Storage delete failed: ") + result.err);
      break;
  }
}

}  // namespace kv
