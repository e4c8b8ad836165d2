// The client API's answers (node/api.hpp): route, method, key, then the store. Each refusal is a
// 4xx with the exact detail the README's API table promises; only the storage engine gives a 5xx.
#include "node/api.hpp"

#include <boost/beast/http/field.hpp>

#include "common/anti_entropy.hpp"
#include "common/json.hpp"
#include "common/key.hpp"
#include "common/rebalance.hpp"
#include "common/replica.hpp"
#include "common/storage_key.hpp"
#include "common/version.hpp"
#include "http/policy.hpp"

namespace kv {

using beast::http::status;
using beast::http::verb;

namespace {

// X-KV-Versioned: 1 asks for the fields of common/version.hpp in the answer; any other value does not.
bool asks_versions(const http::StringRequest& req) { return req[version::kVersionedField] == "1"; }

// What the key holds after the request: its tag ("0.0": nothing), and whether that is a delete.
void set_version_fields(http::StringResponse& res, const Tag& held, bool tombstone) {
  res.set(version::kField, format_tag(held));
  if (tombstone) res.set(version::kTombstoneField, "1");
}

}  // namespace

Api::Api(Store& store, NodeMetrics& metrics, ApiLimits limits, std::string node_id, const ReplicaTrees* trees,
         Incarnation* incarnation)
    : store_(store), metrics_(metrics), admin_(store, metrics), limits_(limits), node_id_(std::move(node_id)) {
  auto role = std::make_shared<NodeRole>();
  role->trees = std::shared_ptr<const ReplicaTrees>(std::shared_ptr<void>(), trees);  // not owned
  role->incarnation = incarnation;
  role->floors = trees ? trees->floors() : nullptr;
  role_.store(std::move(role));
}

Route Api::route_of(std::string_view target) noexcept {
  const auto path = target_path(target);
  if (path == "/get") return Route::get;
  if (path == "/put") return Route::put;
  if (path == "/del") return Route::del;
  if (path == http::kHealthPath) return Route::health;
  if (path == http::kMetricsPath) return Route::metrics;
  if (path.starts_with(rebalance::kAdminPrefix)) return Route::admin;
  if (SyncApi::serves(path)) return Route::sync;
  if (path.starts_with(replica::kPrefix)) return Route::replica;
  return Route::other;
}

Route Api::handle(const http::StringRequest& req, http::StringResponse& res, std::optional<DeferredWrite>* deferred) {
  const Route route = route_of(req.target());
  Route op = route;  // the key operation: a /replica/ request's is its path's
  res.version(req.version());
  if (!node_id_.empty()) res.set(http::kNodeField, node_id_);
  switch (route) {
    case Route::other:
      http::error_answer(res, status::not_found, http::kNotFound);
      return route;
    case Route::health:
      if (http::allow_method(res, req.method(), verb::get, http::kReadMethods)) health(*role_.load(), res);
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
    case Route::sync:
      if (admin_.authorized(req, res)) {
        const auto role = role_.load();
        SyncApi(store_, role->trees.get(), role->incarnation).handle(req, res);
      }
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
    case Route::replica: {
      if (!admin_.authorized(req, res)) return route;
      const auto path = target_path(req.target());
      if (path == replica::kGetPath) op = Route::get;
      else if (path == replica::kPutPath) op = Route::put;
      else if (path == replica::kDelPath) op = Route::del;
      else {
        http::error_answer(res, status::not_found, http::kNotFound);
        return route;
      }
      const bool allowed = op == Route::get   ? http::allow_method(res, req.method(), verb::get, http::kReadMethods)
                           : op == Route::put ? http::allow_method(res, req.method(), verb::post, "POST")
                                              : http::allow_method(res, req.method(), verb::delete_, "DELETE");
      if (!allowed) return route;
      // A replica that may have forgot writes answers no quorum read or tag query (node/incarnation.hpp).
      const auto role = role_.load();
      const Incarnation* incarnation = role->incarnation;
      if (op == Route::get && incarnation && gate_reads_ && !incarnation->serving()) {
        const NodeState state = incarnation->state();
        res.set(anti_entropy::kStateField, state_name(state));
        http::error_answer(res, status::service_unavailable,
                           "this replica is " + std::string(state_name(state)) + " its data (" +
                               std::to_string(incarnation->peers_done()) + " of " +
                               std::to_string(incarnation->peer_count()) +
                               " peers done): it takes writes, but answers no quorum reads until it holds every "
                               "acknowledged write");
        return route;
      }
      break;
    }
    default: break;
  }

  KeyResult key = extract_key(req.target(), limits_.max_key_bytes);
  if (key.error != KeyError::none) {
    http::error_answer(res, key.error == KeyError::too_long ? status::payload_too_large : status::bad_request,
                       key_error_detail(key.error));
    return route;
  }
  const bool replica = route == Route::replica;  // always versioned; a write must bring its tag
  if (op != Route::get) write(op, req, storage_key(key.key), res, deferred, replica);
  else if (replica || asks_versions(req)) get_versioned(storage_key(key.key), res, replica);
  else get(storage_key(key.key), res);
  return route;
}

void Api::health(const NodeRole& role, http::StringResponse& res) {
  const auto write_error = store_.write_error();
  std::string state;
  if (!role.ring.empty()) state = ",\"ring\":\"" + role.ring + "\"";
  if (const Incarnation* incarnation = role.incarnation)
    state += ",\"state\":\"" + std::string(state_name(incarnation->state())) + "\",\"incarnation\":\"" +
             incarnation->id() + "\",\"peers_done\":" + std::to_string(incarnation->peers_done()) +
             ",\"peers\":" + std::to_string(incarnation->peer_count()) +
             ",\"tombstones\":" + std::to_string(store_.tombstone_count());
  if (const Floors* floors = role.floors)
    state += ",\"floors\":{\"segments\":" + std::to_string(floors->segments()) +
             ",\"known\":" + (floors->known() ? "true" : "false") +
             ",\"peers_learned\":" + std::to_string(floors->peers_learned()) + "}";
  http::json_answer(res, status::ok,
                    R"({"status":"ok","engine":")" + std::string(store_.engine()) + "\",\"writable\":" +
                        (write_error.empty() ? "true" : "false,\"detail\":" + json_quote(write_error)) + state +
                        (role.health ? role.health() : std::string()) + "}");
}

void Api::get(const std::string& skey, http::StringResponse& res) {
  std::string value, err;
  switch (store_.get(skey, value, err)) {
    case StoreStatus::ok: http::json_answer(res, status::ok, json_value(value)); break;
    case StoreStatus::not_found: http::error_answer(res, status::not_found, "Key not found"); break;
    case StoreStatus::conflict:  // a write's answer only
    case StoreStatus::below_floor:
    case StoreStatus::error:
      metrics_.store_error();
      http::error_answer(res, status::internal_server_error, "Storage read failed: " + err);
      break;
  }
}

void Api::get_versioned(const std::string& skey, http::StringResponse& res, bool replica) {
  std::string value, err;
  Tag tag;
  bool tombstone = false;
  switch (store_.get_versioned(skey, value, tag, tombstone, err)) {
    case StoreStatus::ok: http::json_answer(res, status::ok, json_value(value)); break;
    case StoreStatus::not_found: http::error_answer(res, status::not_found, "Key not found"); break;
    case StoreStatus::conflict:  // a write's answer only
    case StoreStatus::below_floor:
    case StoreStatus::error:
      metrics_.store_error();
      return http::error_answer(res, status::internal_server_error, "Storage read failed: " + err);
  }
  set_version_fields(res, tag, tombstone);
  // Where the key holds no value: a tombstone at or below the floor does not keep an older value out
  // by its tag (node/floors.hpp), so the coordinator's new tag must go above the floor as well.
  if (!replica || (!tag.none() && !tombstone)) return;
  if (const Floors* floors = role_.load()->floors)
    if (const auto floor = floors->floor_of_hash(read_be64(skey))) res.set(replica::kFloorField, std::to_string(floor));
}

void Api::write(Route route, const http::StringRequest& req, std::string skey, http::StringResponse& res,
                std::optional<DeferredWrite>* deferred, bool replica) {
  WriteOp op{WriteOp::Kind::put, std::move(skey), {}};
  if (route == Route::put) {
    std::string detail;
    if (!parse_put_body(req.body(), op.value, detail)) return http::error_answer(res, status::bad_request, detail);
    if (op.value.size() > limits_.max_value_bytes)
      return http::error_answer(res, status::payload_too_large,
                            "Value too large (limit " + std::to_string(limits_.max_value_bytes) + " bytes)");
  } else {
    // A request's X-KV-Tombstone (a rebalance's mark from before versions) means nothing now: every
    // delete of a value keeps a tombstone.
    op.kind = WriteOp::Kind::del;
  }
  WriteForm form{op.kind, std::nullopt, replica || asks_versions(req)};
  if (const auto field = req.find(version::kField); field != req.end()) {
    const auto tag = parse_tag(std::string_view(field->value().data(), field->value().size()));
    if (!tag) return http::error_answer(res, status::bad_request, "X-KV-Version: expected <counter>.<writer in hex>");
    op.tag = form.tag = *tag;
    form.versioned = true;
  }
  if (replica && (!form.tag || form.tag->none())) return http::error_answer(res, status::bad_request, replica::kTagRequired);
  op.floored = replica;
  form.ring_hash = read_be64(op.key);
  if (deferred && store_.group_commit()) {
    *deferred = DeferredWrite{std::move(op), form};
    return;
  }
  finish_write(form, store_.write(std::move(op)), res);
}

void Api::finish_write(const WriteForm& form, const WriteResult& result, http::StringResponse& res) {
  switch (result.status) {
    case StoreStatus::ok: http::json_answer(res, status::ok, json_success()); break;
    case StoreStatus::not_found: http::error_answer(res, status::not_found, "Key not found"); break;
    case StoreStatus::conflict:
      metrics_.version_conflicts();
      http::error_answer(res, status::conflict,
                         "version " + format_tag(form.tag.value_or(result.held)) + " already holds another value");
      break;
    case StoreStatus::below_floor: {
      metrics_.writes_below_floor();
      const Floors* floors = role_.load()->floors;
      const std::uint64_t floor = floors && floors->known() ? floors->floor_of_hash(form.ring_hash) : 0;
      http::error_answer(res, status::conflict,
                         floor ? "version " + format_tag(form.tag.value_or(Tag{})) + " is not above the floor " +
                                     std::to_string(floor) +
                                     " of its key's segment, where deleted keys were purged: refused, not stored; "
                                     "write again with a new version"
                               : std::string("this replica is new and still learning its peers' floors: refused, not "
                                             "stored; write again"));
      res.set(replica::kFloorField, floor ? std::to_string(floor) : std::string(replica::kFloorUnknown));
      res.set(version::kAppliedField, "0");
      return;
    }
    case StoreStatus::error:
      metrics_.store_error();
      // No version fields: what the key holds is unknown.
      return http::error_answer(res, status::internal_server_error,
                                std::string(form.kind == WriteOp::Kind::put ? "Storage write failed: " : "Storage delete failed: ") +
                                    result.err);
  }
  if (form.tag && !result.applied && result.status != StoreStatus::conflict) metrics_.writes_superseded();
  if (!form.versioned) return;
  set_version_fields(res, result.held, result.tombstone);
  if (form.tag) res.set(version::kAppliedField, result.applied ? "1" : "0");
}

}  // namespace kv
