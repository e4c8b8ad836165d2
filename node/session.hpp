// kvnode's connection handler: reads requests (pipelined or not) and answers them in order through
// the Api; with a group-commit store, writes are awaited without blocking the worker. The
// rebalancer's /admin/ requests (scans, ingests and drops of thousands of keys) run on `admin_pool`,
// so that clients of the same worker do not wait behind them.
#pragma once

#include "node/api.hpp"
#include "net/server.hpp"

namespace kv {

net::SessionHandler node_session_handler(Api& api, NodeMetrics& metrics, const http::ServerLimits& limits,
                                         net::asio::thread_pool& admin_pool);

}  // namespace kv
