// What every kvring listener answers on the paths that are its own rather than the API's, the same
// way on kvproxy's data path, its admin port and kvnode: /health and /metrics (and the admin port's
// pages) take GET and HEAD, which goes wherever GET does (RFC 9110 9.1); any other method gets 405
// with `Allow: GET, HEAD` and a JSON detail.
#pragma once

#include <string_view>

#include "http/scan.hpp"

namespace kv::http {

inline constexpr std::string_view kHealthPath = "/health";
inline constexpr std::string_view kMetricsPath = "/metrics";
inline constexpr std::string_view kReadMethods = "GET, HEAD";  // Allow: on a read-only path
inline constexpr std::string_view kAllowReadLine = "Allow: GET, HEAD\r\n";  // the same, as a field line
inline constexpr std::string_view kMethodNotAllowed = "Method not allowed";
inline constexpr std::string_view kNotFound = "Not found";
inline constexpr std::string_view kJson = "application/json";
inline constexpr std::string_view kPrometheusText = "text/plain; version=0.0.4";
// A proxy's or a node's /health body when it has nothing more to say.
inline constexpr std::string_view kHealthOk = R"({"status":"ok"})";

// Every answer of a node, and every answer kvproxy relays, names the node that gave it. A proxy sets
// it itself and drops a node's own copy (compared in lower case: iequal_lower).
inline constexpr std::string_view kNodeField = "X-KV-Node";
inline constexpr std::string_view kNodeFieldLower = "x-kv-node";
// Every X-KV- field is kvring's own (X-KV-Node, and the node-to-node fields of common/version.hpp):
// kvproxy drops them all from what clients send and from what nodes answer, then sets its own.
inline constexpr std::string_view kOwnFieldPrefixLower = "x-kv-";

constexpr bool is_read(Method m) noexcept { return m == Method::get || m == Method::head; }

}  // namespace kv::http
