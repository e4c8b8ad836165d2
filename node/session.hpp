// kvnode's connection handler: reads requests (pipelined or not) and answers them in order through
// the Api; with a group-commit store, writes are awaited without blocking the worker.
#pragma once

#include "api.hpp"
#include "http_server.hpp"

namespace kv {

net::SessionHandler node_session_handler(Api& api, NodeMetrics& metrics, const net::ReadLimits& limits);

}  // namespace kv
