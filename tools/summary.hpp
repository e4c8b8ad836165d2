// What ring-rebalance apply reports when it is done: its last log line, and with --json one JSON
// document on stdout that scripts read. Pure functions of the run's numbers, so both are tested as text.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "common/ring_change.hpp"
#include "tools/copy.hpp"
#include "tools/flows.hpp"

namespace kv::tools {

struct ApplySummary {
  std::string from_fingerprint, to_fingerprint;
  double moved = 0, ideal_moved = 0;  // shares of the key space (the plan's)
  std::size_t proxies = 0;
  std::span<const Flow> flows;  // the caller keeps them
  // This run's copy; with copied_before, none ran (an earlier run finished it) and it is all zero.
  CopyResult copy;
  bool copied_before = false;
};

// "done: ring F on N proxies; ..."
std::string summary_line(const ApplySummary& s);
// {"status":"success","from":...,"flows":[...]}, without a newline.
std::string summary_json(const ApplySummary& s);

}  // namespace kv::tools
