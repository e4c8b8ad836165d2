// kvnode's client API: one parsed HTTP request in, one response out (put, get, del, health, metrics;
// paths under /admin/ go to the AdminApi). No sockets here, so the fuzzer and the unit tests drive
// it directly. Thread-safe: the store and counters are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "node/admin_api.hpp"
#include "node/metrics.hpp"
#include "http/message.hpp"
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
  // `incarnation`: whether this replica counts in quorums yet (null: always).
  Api(Store& store, NodeMetrics& metrics, ApiLimits limits, std::string node_id = {}, const ReplicaTrees* trees = nullptr,
      Incarnation* incarnation = nullptr)
      : store_(store), metrics_(metrics), admin_(store, metrics), sync_(store, trees, incarnation), limits_(limits),
        node_id_(std::move(node_id)), incarnation_(incarnation), floors_(trees ? trees->floors() : nullptr) {}

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
  // More fields for /health's JSON (",\"name\":value..."; kvnode's anti-entropy summary, which
  // kvproxy's health checks read). Set before serving.
  void set_health_section(std::function<std::string()> section) { health_section_ = std::move(section); }
  // With --ring: /health says the fingerprint of the ring the node runs on ("ring"), so that whoever
  // had it adopt another (POST /admin/ring) can tell when it runs on that one. Set before serving.
  void set_ring_fingerprint(std::string fingerprint) { ring_fingerprint_ = std::move(fingerprint); }
  // When set, every /admin/ request needs "Authorization: Bearer <token>" (401 without, 403 with
  // another). Set before serving.
  void set_admin_token(std::string token) { admin_.set_token(std::move(token)); }
  // POST /admin/ring's handling (AdminApi::RingAdopter). Set before serving.
  void set_ring_adopter(AdminApi::RingAdopter adopt) { admin_.set_ring_adopter(std::move(adopt)); }

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
  // `replica`: a coordinator's read or tag query, told the segment's floor where the key holds nothing.
  void get_versioned(const std::string& skey, http::StringResponse& res, bool replica = false);

  Store& store_;
  NodeMetrics& metrics_;
  AdminApi admin_;
  SyncApi sync_;
  ApiLimits limits_;
  std::string node_id_;  // empty: no X-KV-Node header
  Incarnation* incarnation_;
  const Floors* floors_;  // null: no floors (no replicated ring)
  bool gate_reads_ = true;
  std::function<std::string()> health_section_;
  std::string ring_fingerprint_;
};

}  // namespace kv
