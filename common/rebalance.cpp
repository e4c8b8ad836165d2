#include "common/rebalance.hpp"

#include <boost/json.hpp>

#include "common/config.hpp"

namespace kv::rebalance {

std::string_view phase_name(Phase p) noexcept {
  switch (p) {
    case Phase::dual_write: return "dual_write";
    case Phase::read_new: return "read_new";
    default: return "none";
  }
}

std::optional<Phase> parse_phase(std::string_view s) noexcept {
  if (s == "none") return Phase::none;
  if (s == "dual_write") return Phase::dual_write;
  if (s == "read_new") return Phase::read_new;
  return std::nullopt;
}

std::string_view step_name(Step s) noexcept {
  switch (s) {
    case Step::begin: return "begin";
    case Step::read_new: return "read-new";
    case Step::finish: return "finish";
    default: return "abort";
  }
}

std::optional<Step> parse_step(std::string_view s) noexcept {
  for (Step step : {Step::begin, Step::read_new, Step::finish, Step::abort})
    if (s == step_name(step)) return step;
  return std::nullopt;
}

std::string step_target(Step s, std::string_view fingerprint) {
  std::string out(kStepPrefix);
  out.append(step_name(s));
  if (s != Step::abort) out.append("?").append(s == Step::begin ? kFromParam : kToParam).append("=").append(fingerprint);
  return out;
}

std::string_view drop_name(Drop d) noexcept {
  switch (d) {
    case Drop::data: return "data";
    case Drop::tombstones: return "tombstones";
    default: return "all";
  }
}

std::optional<Drop> parse_drop(std::string_view s) noexcept {
  for (Drop d : {Drop::data, Drop::tombstones, Drop::all})
    if (s == drop_name(d)) return d;
  return std::nullopt;
}

std::string drop_target(Drop d) {
  return std::string(kDropPath) + "?" + std::string(kWhatParam) + "=" + std::string(drop_name(d));
}

std::string ingest_target(bool versions) {
  std::string out(kIngestPath);
  if (versions) out.append("?").append(kVersionsParam).append("=1");
  return out;
}

std::string scan_target(std::size_t limit, std::size_t max_bytes, std::string_view after_hex, bool versions) {
  std::string out(kScanPath);
  out.append("?").append(kLimitParam).append("=").append(std::to_string(limit));
  out.append("&").append(kMaxBytesParam).append("=").append(std::to_string(max_bytes));
  if (!after_hex.empty()) out.append("&").append(kAfterParam).append("=").append(after_hex);
  if (versions) out.append("&").append(kVersionsParam).append("=1");
  return out;
}

std::string Position::describe() const {
  return change.phase == Phase::none
             ? "ring " + fingerprint + ", no rebalance"
             : "rebalance " + change.from + " -> " + change.to + ", phase " + std::string(phase_name(change.phase));
}

std::string position_json(const Position& p) {
  std::string out = "{\"status\":\"success\",\"version\":" + std::to_string(p.version) + ",\"fingerprint\":\"" +
                    p.fingerprint + "\",\"phase\":\"" + std::string(phase_name(p.change.phase)) + "\"";
  if (p.change.phase != Phase::none) out += ",\"to\":\"" + p.change.to + "\",\"from\":\"" + p.change.from + "\"";
  return out + "}";
}

std::optional<Position> parse_position(std::string_view json, std::string& error) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) {
    error = "not JSON: " + std::string(json.substr(0, 200));
    return std::nullopt;
  }
  const auto& o = v.as_object();
  auto str = [&](const char* k) -> std::string {
    const auto* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  Position p;
  p.fingerprint = str("fingerprint");
  if (const auto* version = o.if_contains("version"); version && version->is_int64())
    p.version = static_cast<std::uint64_t>(version->as_int64());
  const auto phase = parse_phase(str("phase"));
  if (p.fingerprint.empty() || !phase) {
    error = "no fingerprint and phase in " + std::string(json.substr(0, 200));
    return std::nullopt;
  }
  p.change.phase = *phase;
  p.change.from = str("from");
  p.change.to = str("to");
  return p;
}

namespace {
constexpr std::string_view kSavedHeader = "# kvring rebalance in progress: ";
}

std::string saved_change_path(std::string_view ring_path) { return std::string(ring_path) + ".migration"; }

std::string format_saved_change(const RingChange& c) {
  std::string out(kSavedHeader);
  out.append("phase=").append(phase_name(c.phase)).append(" from=").append(c.from).append(" to=").append(c.to);
  out.append("\n").append(c.yaml);
  return out;
}

RingChange parse_saved_change(std::string_view text, std::string_view source) {
  const auto nl = text.find('\n');
  std::string_view header = text.substr(0, nl);
  const std::string where = std::string(source) + ": line 1: ";
  if (!header.starts_with(kSavedHeader))
    throw ConfigError(where + "expected \"" + std::string(kSavedHeader) + "phase=... from=... to=...\"");
  header.remove_prefix(kSavedHeader.size());
  RingChange saved;
  bool have_phase = false;
  while (!header.empty()) {
    const auto sp = header.find(' ');
    const std::string_view item = header.substr(0, sp);
    header.remove_prefix(sp == std::string_view::npos ? header.size() : sp + 1);
    const auto eq = item.find('=');
    const std::string_view name = item.substr(0, eq), value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    if (name == "phase") {
      const auto p = parse_phase(value);
      if (!p || *p == Phase::none)
        throw ConfigError(where + "phase: expected dual_write or read_new, got '" + std::string(value) + "'");
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

}  // namespace kv::rebalance
