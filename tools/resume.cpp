#include "tools/resume.hpp"

#include <algorithm>
#include <charconv>

namespace kv::tools {

using rebalance::Phase;
using rebalance::phase_name;

std::string Resume::resuming_line() const {
  return "resuming: " + std::to_string(on_old) + " proxies on OLD, " + std::to_string(dual_write) + " in " +
         std::string(phase_name(Phase::dual_write)) + ", " + std::to_string(read_new) + " in " +
         std::string(phase_name(Phase::read_new)) + ", " + std::to_string(on_new) + " on NEW";
}

Resume decide_resume(const std::vector<ProxyPosition>& proxies, const RingPair& rings) {
  Resume r;
  for (const auto& [address, p] : proxies) {
    const bool ours = p.change.from == rings.from_fingerprint && p.change.to == rings.to_fingerprint;
    if (p.change.phase == Phase::none && p.fingerprint == rings.from_fingerprint) ++r.on_old;
    else if (p.change.phase == Phase::none && p.fingerprint == rings.to_fingerprint) ++r.on_new;
    else if (p.change.phase == Phase::dual_write && ours) ++r.dual_write;
    else if (p.change.phase == Phase::read_new && ours) ++r.read_new;
  }
  const std::size_t n = proxies.size();
  // Proxies one step apart are a run that stopped between two proxies; further apart, or elsewhere,
  // is not something this rebalance made.
  const bool agree = r.on_old + r.dual_write + r.read_new + r.on_new == n &&
                     (r.on_old + r.dual_write == n || r.read_new + r.on_new == n || r.dual_write + r.read_new == n);
  if (!agree) {
    r.refusal = "the proxies do not agree on a state this rebalance can start or resume from:";
    for (const auto& [address, p] : proxies) r.refusal += "\n  " + address + ": " + p.describe();
    r.refusal += "\n  expected ring " + rings.from_fingerprint + " (" + rings.from_path + "), ring " +
                 rings.to_fingerprint + " (" + rings.to_path + "), or a rebalance between them";
    return r;
  }
  if (r.on_old == n) r.start = StartAt::clear;
  else if (r.read_new + r.on_new == 0) r.start = StartAt::begin;
  else if (r.on_new < n) r.start = StartAt::read_new;
  else r.start = StartAt::cleanup;
  return r;
}

std::uint64_t change_generation(std::string_view id) {
  const auto dot = id.rfind('.');
  if (dot == std::string_view::npos) return 0;
  const std::string_view digits = id.substr(dot + 1);
  std::uint64_t g = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), g);
  return ec == std::errc{} && end == digits.data() + digits.size() ? g : 0;
}

std::string change_id(const RingPair& rings, const std::vector<PurgeState>& nodes) {
  const std::string prefix = rings.from_fingerprint + "-" + rings.to_fingerprint + ".";
  std::uint64_t highest = 0;
  for (const auto& n : nodes) highest = std::max({highest, change_generation(n.paused), change_generation(n.resumed)});
  for (const auto& n : nodes)
    if (n.paused == prefix + std::to_string(highest) && highest > 0) return n.paused;
  return prefix + std::to_string(highest + 1);
}

}  // namespace kv::tools
