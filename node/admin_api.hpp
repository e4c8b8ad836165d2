// kvnode's side of the rebalance protocol (common/rebalance.hpp): the endpoints under /admin/ that
// ring-rebalance moves data with (scan, count, ingest, drop; bodies and answers in
// common/transfer.hpp). Not part of the client API: kvproxy never forwards these. No sockets here,
// like the Api it sits behind. Thread-safe: the store and counters are, and the token is set before
// serving.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/ring_change.hpp"
#include "http/message.hpp"
#include "node/metrics.hpp"
#include "node/purge_pause.hpp"
#include "node/repair_rate.hpp"
#include "node/store.hpp"

namespace kv {

namespace beast = boost::beast;

// Bounds on one scan answer: records (limit=) and bytes (max_bytes=).
inline constexpr std::size_t kDefaultScanLimit = 1000, kMaxScanLimit = 100'000;
inline constexpr std::size_t kDefaultScanBytes = 1 << 20, kMaxScanBytes = 32 << 20;
// The request body limit under /admin/ (ingest batches), above the client API's.
inline constexpr std::uint64_t kAdminBodyLimit = 64ull << 20;
// The anti-entropy pull's bounds, set while the node runs (busy_percent=, keys_per_second=).
inline constexpr std::string_view kRepairPath = "/admin/repair";

class AdminApi {
 public:
  AdminApi(Store& store, NodeMetrics& metrics) : store_(store), metrics_(metrics) {}

  // When set, every request needs "Authorization: Bearer <token>" (401 without, 403 with another),
  // checked before anything else, so that a caller without it learns nothing of the endpoints.
  void set_token(std::string token) { token_ = std::move(token); }
  // What POST /admin/ring does with its body (kvnode's main: node/main.cpp); unset, it is a 404.
  // Returns the answer's status and body.
  using RingAdopter = std::function<std::pair<unsigned, std::string>(std::string_view yaml)>;
  void set_ring_adopter(RingAdopter adopt) { adopt_ring_ = std::move(adopt); }
  // What POST /admin/purges pauses and resumes (node/purge_pause.hpp); unset, it is a 404.
  void set_purge_pause(PurgePause* pause) noexcept { pause_ = pause; }
  // What POST /admin/repair sets (node/repair_rate.hpp); unset, it is a 404.
  void set_repair_rate(RepairRate* rate) noexcept { rate_ = rate; }

  // Answers a request whose path is under /admin/: fills `res` (status, fields, body).
  void handle(const http::StringRequest& req, http::StringResponse& res);
  // Whether the request carries the token (or none is set); if not, `res` is the 401 or 403. The
  // /replica/ endpoints ask it too.
  bool authorized(const http::StringRequest& req, http::StringResponse& res) const;

 private:
  void ingest(std::string_view target, std::string_view body, http::StringResponse& res);
  void purges(std::string_view target, http::StringResponse& res);
  void repair(std::string_view target, http::StringResponse& res);
  void count(std::span<const HashRange> ranges, http::StringResponse& res);
  void drop(std::string_view target, std::span<const HashRange> ranges, http::StringResponse& res);
  void scan(std::string_view target, std::span<const HashRange> ranges, http::StringResponse& res);
  // A 500 naming the operation, counted as a storage error.
  void store_failed(http::StringResponse& res, std::string_view what, std::string_view err);

  Store& store_;
  NodeMetrics& metrics_;
  std::string token_;  // empty: no token needed
  RingAdopter adopt_ring_;
  PurgePause* pause_ = nullptr;
  RepairRate* rate_ = nullptr;
};

}  // namespace kv
