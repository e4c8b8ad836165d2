#include "tools/flows.hpp"

#include <algorithm>
#include <map>
#include <utility>

namespace kv::tools {

std::vector<Flow> group_flows(const std::vector<Move>& moves, const Ring& from, const Ring& to) {
  std::map<std::pair<std::string, std::string>, Flow> by_ids;
  for (const auto& mv : moves) {
    const auto& a = from.node(mv.from);
    const auto& b = to.node(mv.to);
    auto [it, added] = by_ids.try_emplace({a.id, b.id});
    if (added) it->second = Flow{a.id, b.id, a.address, b.address, {}};
    it->second.ranges.push_back(mv.range);
  }
  std::vector<Flow> flows;
  flows.reserve(by_ids.size());
  for (auto& [ids, f] : by_ids) flows.push_back(std::move(f));
  return flows;
}

namespace {

unsigned majority(std::size_t n) { return static_cast<unsigned>(n / 2 + 1); }

// Whether, with `targets` (bits of the new set) holding the newest of the sources, every majority of
// the new set meets the holders of every write a majority of the old set held: checked against every
// such majority (at most 10 of 5).
bool enough(const std::vector<std::string>& old_set, const std::vector<std::string>& new_set, std::uint32_t targets) {
  const std::uint32_t all_old = (1u << old_set.size()) - 1;
  const unsigned need = static_cast<unsigned>(new_set.size()) - majority(new_set.size()) + 1;
  for (std::uint32_t m = 0; m <= all_old; ++m) {
    if (static_cast<unsigned>(__builtin_popcount(m)) != majority(old_set.size())) continue;
    unsigned holders = 0;
    for (std::size_t j = 0; j < new_set.size(); ++j) {
      bool held = targets & (1u << j);
      for (std::size_t i = 0; !held && i < old_set.size(); ++i) held = (m & (1u << i)) && old_set[i] == new_set[j];
      holders += held;
    }
    if (holders < need) return false;
  }
  return true;
}

}  // namespace

RangeCopies range_copies(const std::vector<std::string>& old_set, const std::vector<std::string>& new_set) {
  RangeCopies c;
  auto kept = [&](const std::string& id) { return std::find(new_set.begin(), new_set.end(), id) != new_set.end(); };
  auto was = [&](const std::string& id) { return std::find(old_set.begin(), old_set.end(), id) != old_set.end(); };
  // Sources: kept members first, then the others, each in placement order.
  unsigned taken = 0;
  for (const bool pass : {true, false})
    for (std::size_t i = 0; i < old_set.size() && taken < majority(old_set.size()); ++i)
      if (kept(old_set[i]) == pass) {
        c.sources |= 1u << i;
        ++taken;
      }
  for (std::size_t j = 0; j < new_set.size(); ++j)
    if (!was(new_set[j])) c.targets |= 1u << j;
  // Kept members while the overlap is short: those that are no source first (they read from all of
  // them), in placement order.
  for (const bool source : {false, true})
    for (std::size_t j = 0; j < new_set.size() && !enough(old_set, new_set, c.targets); ++j) {
      if (c.targets & (1u << j) || !was(new_set[j])) continue;
      const auto i = static_cast<std::size_t>(std::find(old_set.begin(), old_set.end(), new_set[j]) - old_set.begin());
      if (static_cast<bool>(c.sources & (1u << i)) == source) c.targets |= 1u << j;
    }
  return c;
}

ReplicaChange replica_change(const std::vector<ReplicaMove>& moves, const Ring& from, const Ring& to) {
  std::map<std::pair<std::string, std::string>, Flow> copies, primary;
  std::map<std::string, NodeRanges> gains, losses;
  auto add = [](std::vector<HashRange>& ranges, const HashRange& r) {
    if (!ranges.empty() && ranges.back().hi + 1 == r.lo) ranges.back().hi = r.hi;
    else ranges.push_back(r);
  };
  for (const auto& mv : moves) {
    std::vector<std::string> old_set, new_set;
    for (std::uint32_t n : mv.from) old_set.push_back(from.node(n).id);
    for (std::uint32_t n : mv.to) new_set.push_back(to.node(n).id);
    const RangeCopies c = range_copies(old_set, new_set);
    for (std::size_t j = 0; j < new_set.size(); ++j) {
      const RingNode& t = to.node(mv.to.node[j]);
      if (std::find(old_set.begin(), old_set.end(), t.id) == old_set.end()) {
        auto [it, added] = gains.try_emplace(t.id);
        if (added) it->second = NodeRanges{t.id, t.address, {}};
        add(it->second.ranges, mv.range);
      }
      if (!(c.targets & (1u << j))) continue;
      const bool gained = std::find(old_set.begin(), old_set.end(), t.id) == old_set.end();
      bool first = gained;  // primary: what members new to the range gain, from one source
      for (std::size_t i = 0; i < old_set.size(); ++i) {
        if (!(c.sources & (1u << i)) || old_set[i] == t.id) continue;
        const RingNode& src = from.node(mv.from.node[i]);
        for (auto* group : {&copies, first ? &primary : nullptr}) {
          if (!group) continue;
          auto [it, added] = group->try_emplace({src.id, t.id});
          if (added) it->second = Flow{src.id, t.id, src.address, t.address, {}};
          add(it->second.ranges, mv.range);
        }
        first = false;
      }
    }
    for (std::uint32_t n : mv.from) {
      const RingNode& o = from.node(n);
      if (std::find(new_set.begin(), new_set.end(), o.id) != new_set.end()) continue;
      auto [it, added] = losses.try_emplace(o.id);
      if (added) it->second = NodeRanges{o.id, o.address, {}};
      add(it->second.ranges, mv.range);
    }
  }
  ReplicaChange out;
  for (auto& [ids, f] : copies) out.copies.push_back(std::move(f));
  for (auto& [ids, f] : primary) out.primary.push_back(std::move(f));
  for (auto& [id, g] : gains) out.gains.push_back(std::move(g));
  for (auto& [id, l] : losses) out.losses.push_back(std::move(l));
  return out;
}

}  // namespace kv::tools
