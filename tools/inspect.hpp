// ring-rebalance's read-only commands: show (each node's share of a ring), owner (the node of each
// key) and plan (what a change from OLD to NEW moves, against the ideal). They print on stdout and
// return the exit code; bad files throw ConfigError.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kv::tools {

int print_shares(const std::string& ring_path);
int print_owners(const std::string& ring_path, const std::vector<std::string>& keys);
// `as_json`: one JSON document for scripts; `list_ranges`: every moving range too.
// plan --count: the nodes are asked (POST /admin/count) how many keys and bytes each gains and loses.
struct CountOptions {
  std::string token;  // the nodes' admin token; empty: none
  std::chrono::milliseconds timeout{30'000};
};
int print_plan(const std::string& from_path, const std::string& to_path, bool as_json, bool list_ranges,
               const std::optional<CountOptions>& count = std::nullopt);

}  // namespace kv::tools
