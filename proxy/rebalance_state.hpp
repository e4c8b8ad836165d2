// What kvproxy keeps on disk during a rebalance, so that a restart mid-way comes back in the same
// phase instead of routing by the old ring alone (which would leave the new owners stale):
// "<ring file>.migration", the new ring's text after one header line,
//   # kvring rebalance in progress: phase=dual_write from=<fingerprint> to=<fingerprint>
// The header is a YAML comment, so the file is also the new ring.yaml as given.
#pragma once

#include <string>
#include <string_view>

#include "common/files.hpp"
#include "proxy/state.hpp"

namespace kv::proxy {

struct SavedMigration {
  Phase phase = Phase::dual_write;
  std::string from, to;  // ring fingerprints
  std::string yaml;      // the new ring's text
};

std::string migration_state_path(const std::string& ring_path);
std::string format_saved_migration(const Migration& m);
// Throws ConfigError("<source>: line 1: ...") when the header is not one this version wrote.
SavedMigration parse_saved_migration(std::string_view text, std::string_view source);

}  // namespace kv::proxy
