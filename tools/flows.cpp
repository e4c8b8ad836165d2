#include "tools/flows.hpp"

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

}  // namespace kv::tools
