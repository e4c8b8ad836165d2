// kvnode's client API: one parsed HTTP request in, one response out (put, get, del, health, metrics;
// paths under /admin/ go to the AdminApi). No sockets here, so the fuzzer and the unit tests drive
// it directly. Thread-safe: the store and counters are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/shared_slot.hpp"
#include "node/admin_api.hpp"
#include "node/metrics.hpp"
#include "http/message.hpp"
#include "node/role.hpp"
#include "node/route.hpp"
#include "node/store.hpp"
#include "node/sync_api.hpp"

namespace kv {

struct ApiLimits {
  std::size_t max_key_bytes = 1024;
  std::size_t max_value_bytes = 1 << 20;
};

// How a write is answered: by its kind and, for a versioned request (common/version.hpp), with the
// fields that say what the key holds after it.
struct WriteForm {
  WriteOp::Kind kind = WriteOp::Kind::put;
  std::optional<Tag> tag;   // the request's X-KV-Version: the answer says X-KV-Applied
  bool versioned = false;   // tagged, or X-KV-Versioned: 1: the answer says X-KV-Version (and X-KV-Tombstone)
  std::uint64_t ring_hash = 0;  // the key's: a below_floor answer names its segment's floor
};

// A valid write handed back to the caller (a group-commit store), with how to answer it.
struct DeferredWrite {
  WriteOp op;
  WriteForm form;
};

class Api {
 public:
  // `trees`: the node's hash trees, which its peers' anti-entropy exchanges read (null: none).
  // `incarnation`: whether this replica counts in quorums yet (null: always). Both outlive the Api
  // (kvnode publishes roles instead: set_role).
  Api(Store& store, NodeMetrics& metrics, ApiLimits limits, std::string node_id = {}, const ReplicaTrees* trees = nullptr,
      Incarnation* incarnation = nullptr);

  // Fills `res` (status, headers, body; not keep-alive or Content-Length) and returns the route.
  // With `deferred` given and a group-commit store, a valid put or delete is not applied: it is
  // moved to *deferred, and the caller submits its op to the store, then calls finish_write() with
  // its form. Without `deferred`, every write is applied before handle() returns.
  Route handle(const http::StringRequest& req, http::StringResponse& res, std::optional<DeferredWrite>* deferred = nullptr);
  void finish_write(const WriteForm& form, const WriteResult& result, http::StringResponse& res);

  Store& store() noexcept { return store_; }
  // A broken mode for the tests (kvnode --unsafe-serve-at-once): quorum reads are answered in every
  // state of the incarnation. Set before serving.
  void unsafe_serve_at_once() noexcept { gate_reads_ = false; }
  // What the node is for its ring (node/role.hpp), from the next request on; any time. With --ring,
  // /health says the fingerprint of the ring the node runs on ("ring"), so that whoever had it adopt
  // another (POST /admin/ring) can tell when it runs on that one, and the role's health fields
  // (kvnode's anti-entropy summary, which kvproxy's health checks read).
  void set_role(std::shared_ptr<const NodeRole> role) noexcept { role_.store(std::move(role)); }
  // When set, every /admin/ request needs "Authorization: Bearer <token>" (401 without, 403 with
  // another). Set before serving.
  void set_admin_token(std::string token) { admin_.set_token(std::move(token)); }
  // POST /admin/ring's handling (AdminApi::RingAdopter). Set before serving.
  void set_ring_adopter(AdminApi::RingAdopter adopt) { admin_.set_ring_adopter(std::move(adopt)); }
  void set_purge_pause(PurgePause* pause) { admin_.set_purge_pause(pause); }
  void set_repair_rate(RepairRate* rate) { admin_.set_repair_rate(rate); }

  // The route of a request target, known from its path alone: the session decides from it, before
  // handle(), where a request runs.
  static Route route_of(std::string_view target) noexcept;

 private:
  // A put or a delete with its key checked; `route` says which. `replica`: a /replica/ write, which
  // must carry its tag and is always answered with the version fields.
  void write(Route route, const http::StringRequest& req, std::string skey, http::StringResponse& res,
             std::optional<DeferredWrite>* deferred, bool replica = false);
  void get(const std::string& skey, http::StringResponse& res);
  // X-KV-Versioned: 1: the value with the fields that say what the key holds.
  // `replica`: a coordinator's read or tag query, told the segment's floor where the key holds no value.
  void get_versioned(const std::string& skey, http::StringResponse& res, bool replica = false);
  void health(const NodeRole& role, http::StringResponse& res);

  Store& store_;
  NodeMetrics& metrics_;
  AdminApi admin_;
  ApiLimits limits_;
  std::string node_id_;  // empty: no X-KV-Node header
  SharedSlot<const NodeRole> role_;
  bool gate_reads_ = true;
};

}  // namespace kv
