#include "proxy/rebalance_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kv::proxy {

namespace {
constexpr std::string_view kHeader = "# kvring rebalance in progress: ";
}

std::string migration_state_path(const std::string& ring_path) { return ring_path + ".migration"; }

std::string format_saved_migration(const Migration& m) {
  std::string out(kHeader);
  out.append("phase=").append(phase_name(m.phase)).append(" from=").append(m.from).append(" to=").append(m.fingerprint);
  out.append("\n").append(m.yaml);
  return out;
}

SavedMigration parse_saved_migration(std::string_view text, std::string_view source) {
  const auto nl = text.find('\n');
  std::string_view header = text.substr(0, nl);
  const std::string where = std::string(source) + ": line 1: ";
  if (!header.starts_with(kHeader))
    throw ConfigError(where + "expected \"" + std::string(kHeader) + "phase=... from=... to=...\"");
  header.remove_prefix(kHeader.size());
  SavedMigration saved;
  bool have_phase = false;
  while (!header.empty()) {
    const auto sp = header.find(' ');
    const std::string_view item = header.substr(0, sp);
    header.remove_prefix(sp == std::string_view::npos ? header.size() : sp + 1);
    const auto eq = item.find('=');
    const std::string_view name = item.substr(0, eq), value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    if (name == "phase") {
      const auto p = parse_phase(value);
      if (!p || *p == Phase::none) throw ConfigError(where + "phase: expected dual_write or read_new, got '" + std::string(value) + "'");
      saved.phase = *p;
      have_phase = true;
    } else if (name == "from") {
      saved.from = value;
    } else if (name == "to") {
      saved.to = value;
    }
  }
  if (!have_phase || saved.from.size() != 16 || saved.to.size() != 16)
    throw ConfigError(where + "expected phase=, from= and to= (16 hex digits each)");
  saved.yaml = nl == std::string_view::npos ? "" : std::string(text.substr(nl + 1));
  return saved;
}

}  // namespace kv::proxy
