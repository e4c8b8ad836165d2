// kvnode's client API: one parsed HTTP request in, one response out. No sockets here, so the fuzzer
// (and anything else) can drive it directly. Thread-safe: the store and counters are.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "node/metrics.hpp"
#include "node/route.hpp"
#include "node/store.hpp"

namespace kv {

namespace beast = boost::beast;
using Request = beast::http::request<beast::http::string_body>;
using Response = beast::http::response<beast::http::string_body>;

struct ApiLimits {
  std::size_t max_key_bytes = 1024;
  std::size_t max_value_bytes = 1 << 20;
};

// Bounds on one /admin/scan answer.
inline constexpr std::size_t kDefaultScanLimit = 1000, kMaxScanLimit = 100'000;
inline constexpr std::size_t kDefaultScanBytes = 1 << 20, kMaxScanBytes = 32 << 20;
// The request body limit under /admin/ (ingest batches).
inline constexpr std::uint64_t kAdminBodyLimit = 64ull << 20;

class Api {
 public:
  Api(Store& store, NodeMetrics& metrics, ApiLimits limits, std::string node_id = {})
      : store_(store), metrics_(metrics), limits_(limits), node_id_(std::move(node_id)) {}

  // Fills `res` (status, headers, body; not keep-alive or Content-Length) and returns the route.
  // With `deferred` given and a group-commit store, a valid put or delete is not applied: it is
  // moved to *deferred, and the caller submits it to the store, then calls finish_write(). Without
  // `deferred`, every write is applied before handle() returns.
  Route handle(const Request& req, Response& res, std::optional<WriteOp>* deferred = nullptr);
  void finish_write(WriteOp::Kind kind, const WriteResult& result, Response& res);

  Store& store() noexcept { return store_; }
  // When set, every /admin/ request needs "Authorization: Bearer <token>" (401 without, 403 with
  // another). Set before serving.
  void set_admin_token(std::string token) { admin_token_ = std::move(token); }

  static Route route_of(std::string_view target) noexcept;

 private:
  // The rebalancer's endpoints, under /admin/ (not part of the client API; kvproxy never forwards
  // them): scan, count, ingest, drop. Formats in transfer.hpp.
  void handle_admin(const Request& req, Response& res);

  Store& store_;
  NodeMetrics& metrics_;
  ApiLimits limits_;
  std::string node_id_;  // empty: no X-KV-Node header
  std::string admin_token_;
};

// An error response: {"status":"error","detail":...} with the given status.
void error_response(Response& res, beast::http::status status, std::string_view detail);

}  // namespace kv
