// kvproxy's admin listener (default 127.0.0.1:8404), on the shared server frame (net/session.hpp):
// the routes only. The stats page (/stats, /stats.json) and metrics come from proxy/stats.hpp; the
// ring (GET /admin/ring; POST swaps it) and the rebalance steps (/admin/migration...) from
// proxy/ring_control.hpp. With a token, requests that may change something (any method but GET and HEAD under
// /admin/) need "Authorization: Bearer <token>" (401 without, 403 with another); the pages and GETs
// stay open.
#pragma once

#include <string>

#include "net/session.hpp"
#include "proxy/cluster.hpp"
#include "proxy/options.hpp"
#include "proxy/ring_control.hpp"

namespace kv::proxy {

class Admin final : public net::Service {
 public:
  Admin(Cluster& cluster, const ProxyCounters& counters, RingControl& control, std::string token = {})
      : cluster_(cluster), counters_(counters), control_(control), token_(std::move(token)) {}

  net::asio::awaitable<void> handle(http::StringRequest& req, http::StringResponse& res) override;

 private:
  Cluster& cluster_;
  const ProxyCounters& counters_;
  RingControl& control_;
  std::string token_;
};

}  // namespace kv::proxy
