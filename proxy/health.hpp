// Active health checks, like HAProxy's `check inter 2s fall 3 rise 2`: every interval, GET /health
// on each node with a timeout; `fall` failures in a row mark it down, `rise` successes up again.
// Passive checks (a failed connect marks a node down at once) are proxy/node_exchange.cpp's.
#pragma once

#include <memory>

#include "net/server.hpp"
#include "proxy/cluster.hpp"

namespace kv::proxy {

// Starts the check loop of `backend` on `ioc`; it ends when the backend is retired. Thread-safe.
void start_health_checks(Cluster& cluster, net::asio::io_context& ioc, std::shared_ptr<Backend> backend);

}  // namespace kv::proxy
