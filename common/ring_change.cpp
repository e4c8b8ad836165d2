#include "common/ring_change.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>

namespace kv {

namespace {
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
constexpr double kSpace = 18446744073709551616.0;  // 2^64
}  // namespace

double range_share(const HashRange& r) {
  return (static_cast<double>(r.hi - r.lo) + 1.0) / kSpace;
}

std::vector<Move> moved_ranges(const Ring& from, const Ring& to) {
  std::vector<Move> out;
  const std::size_t n = from.point_count(), m = to.point_count();
  if (n == 0 || m == 0) return out;
  auto emit = [&](std::uint64_t lo, std::uint64_t hi, std::uint32_t a, std::uint32_t b) {
    if (from.node(a).id == to.node(b).id) return;
    if (!out.empty() && out.back().from == a && out.back().to == b && out.back().range.hi + 1 == lo) {
      out.back().range.hi = hi;
      return;
    }
    out.push_back(Move{{lo, hi}, a, b});
  };
  // Hashes (previous cut, cut] belong in each ring to the first point at or after the cut; i and j
  // are those first points (n / m: past the last point, which wraps to point 0).
  std::size_t i = 0, j = 0;
  std::uint64_t lo = 0;
  while (i < n || j < m) {
    const std::uint64_t cut = std::min(i < n ? from.point(i) : kMax, j < m ? to.point(j) : kMax);
    emit(lo, cut, from.point_owner(i < n ? i : 0), to.point_owner(j < m ? j : 0));
    while (i < n && from.point(i) == cut) ++i;
    while (j < m && to.point(j) == cut) ++j;
    if (cut == kMax) return out;
    lo = cut + 1;
  }
  emit(lo, kMax, from.point_owner(0), to.point_owner(0));  // past the last point of both: wraps
  return out;
}

std::vector<ReplicaMove> replica_moves(const Ring& from, const Ring& to) {
  std::vector<ReplicaMove> out;
  if (from.point_count() == 0 || to.point_count() == 0) return out;
  auto same_nodes = [&](const ReplicaSet& a, const ReplicaSet& b) {
    if (a.size != b.size) return false;
    for (std::uint32_t x : a) {
      bool found = false;
      for (std::uint32_t y : b) found = found || from.node(x).id == to.node(y).id;
      if (!found) return false;
    }
    return true;
  };
  auto same_sets = [](const ReplicaSet& a, const ReplicaSet& b) {
    return a.size == b.size && std::equal(a.begin(), a.end(), b.begin());
  };
  // Hashes (previous cut, cut] have one set in each ring: that of the first point at or after the cut.
  std::vector<std::uint64_t> cuts;
  cuts.reserve(from.point_count() + to.point_count() + 1);
  for (std::size_t i = 0; i < from.point_count(); ++i) cuts.push_back(from.point(i));
  for (std::size_t i = 0; i < to.point_count(); ++i) cuts.push_back(to.point(i));
  cuts.push_back(kMax);  // past the last point of both: wraps to the first
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::uint64_t lo = 0;
  for (const std::uint64_t cut : cuts) {
    const ReplicaSet a = from.replicas_of_hash(cut), b = to.replicas_of_hash(cut);
    if (!same_nodes(a, b)) {
      if (!out.empty() && out.back().range.hi + 1 == lo && same_sets(out.back().from, a) && same_sets(out.back().to, b))
        out.back().range.hi = cut;
      else
        out.push_back(ReplicaMove{{lo, cut}, a, b});
    }
    if (cut == kMax) break;
    lo = cut + 1;
  }
  return out;
}

std::string ring_fingerprint(const RingConfig& config) {
  std::vector<const NodeConfig*> nodes;
  for (const auto& n : config.nodes) nodes.push_back(&n);
  std::sort(nodes.begin(), nodes.end(), [](auto* a, auto* b) { return a->id < b->id; });
  std::string canon = "kvring ring v1\nvnodes " + std::to_string(config.vnodes) + "\n";
  // Replicas and zones change placement, so they count; said only when set, so that a ring without
  // them keeps the fingerprint it had before they existed (saved migration states name it).
  if (config.replicas != 1) canon += "replicas " + std::to_string(config.replicas) + "\n";
  for (const auto* n : nodes) {
    canon += n->id + " " + n->address.str() + " " + std::to_string(n->weight);
    if (!n->zone.empty()) canon += " zone " + n->zone;
    canon += "\n";
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits_withSeed(canon.data(), canon.size(), 0)));
  return hex;
}

void check_change(const RingConfig& from, std::string_view from_source, const RingConfig& to,
                  std::string_view to_source) {
  const std::string src(to_source);
  if (from.vnodes != to.vnodes)
    throw ConfigError(src + ": vnodes: " + std::to_string(to.vnodes) + " differs from " + std::string(from_source) + " (" +
                      std::to_string(from.vnodes) + "); a rebalance keeps vnodes (changing it moves almost every key)");
  for (std::size_t i = 0; i < to.nodes.size(); ++i) {
    const auto& n = to.nodes[i];
    for (const auto& o : from.nodes) {
      if (o.id == n.id && !(o.address == n.address))
        throw ConfigError(src + ": nodes[" + std::to_string(i) + "].address: node " + n.id + " is at " + o.address.str() +
                          " in " + std::string(from_source) +
                          "; a rebalance cannot move a node to another address (its data stays at the old one)");
      if (o.address == n.address && o.id != n.id)
        throw ConfigError(src + ": nodes[" + std::to_string(i) + "].id: address " + n.address.str() + " belongs to " +
                          o.id + " in " + std::string(from_source) +
                          "; renaming a node is not a rebalance (remove it and add a node at another address)");
    }
  }
}

std::vector<double> ideal_holding(const std::vector<std::uint32_t>& weights, std::uint32_t replicas) {
  // Proportional to weight, N copies in all, no node above the whole space: nodes whose share would
  // pass 1 hold everything, and the rest is shared again among the others (water-filling).
  std::vector<double> out(weights.size(), 0);
  std::vector<bool> full(weights.size(), false);
  double left = replicas;
  for (bool changed = true; changed;) {
    changed = false;
    double w = 0;
    for (std::size_t i = 0; i < weights.size(); ++i)
      if (!full[i]) w += weights[i];
    for (std::size_t i = 0; i < weights.size(); ++i) {
      if (full[i]) continue;
      out[i] = w > 0 ? left * weights[i] / w : 0;
      if (out[i] > 1.0) {
        full[i] = true;
        out[i] = 1.0;
        left -= 1.0;
        changed = true;
        break;
      }
    }
  }
  return out;
}

Plan make_plan(const RingConfig& from_config, const Ring& from, const RingConfig& to_config, const Ring& to) {
  Plan plan;
  plan.from_fingerprint = ring_fingerprint(from_config);
  plan.to_fingerprint = ring_fingerprint(to_config);
  plan.moves = moved_ranges(from, to);

  std::map<std::string, PlanNode> nodes;
  std::uint64_t w_before = 0, w_after = 0;
  for (const auto& n : from.nodes()) w_before += n.weight;
  for (const auto& n : to.nodes()) w_after += n.weight;
  const auto own_before = from.ownership(), own_after = to.ownership();
  auto add = [&](const Ring& ring, const std::vector<double>& own, std::uint64_t total_weight, bool after) {
    const auto held = ring.holding();
    std::vector<std::uint32_t> weights;
    for (const auto& n : ring.nodes()) weights.push_back(n.weight);
    const auto ideal_held = ideal_holding(weights, ring.replicas());
    for (std::size_t i = 0; i < own.size(); ++i) {
      const auto& n = ring.node(static_cast<std::uint32_t>(i));
      auto& p = nodes[n.id];
      p.id = n.id;
      p.address = n.address.str();
      (after ? p.weight_after : p.weight_before) = n.weight;
      (after ? p.after : p.before) = own[i];
      (after ? p.ideal_after : p.ideal_before) = static_cast<double>(n.weight) / static_cast<double>(total_weight);
      (after ? p.held_after : p.held_before) = held[i];
      (after ? p.ideal_held_after : p.ideal_held_before) = ideal_held[i];
    }
  };
  add(from, own_before, w_before, false);
  add(to, own_after, w_after, true);
  plan.replicas_before = from.replicas();
  plan.replicas_after = to.replicas();

  // Exact sums per (from, to), in units of hashes.
  std::map<std::pair<std::string, std::string>, std::pair<uint128, std::size_t>> flows;
  for (const auto& mv : plan.moves) {
    auto& f = flows[{from.node(mv.from).id, to.node(mv.to).id}];
    f.first += static_cast<uint128>(mv.range.hi - mv.range.lo) + 1;
    ++f.second;
  }
  // The ideal: every node that must gain takes from every node that must lose, in proportion.
  double total_loss = 0;
  for (const auto& [id, p] : nodes) total_loss += std::max(0.0, p.ideal_before - p.ideal_after);
  plan.ideal_moved = total_loss;
  uint128 moved = 0;
  for (const auto& [ids, f] : flows) {
    const auto& a = nodes[ids.first];
    const auto& b = nodes[ids.second];
    PlanFlow flow{ids.first, ids.second, static_cast<double>(f.first) / kSpace, 0, f.second};
    const double loss = std::max(0.0, a.ideal_before - a.ideal_after);
    const double gain = std::max(0.0, b.ideal_after - b.ideal_before);
    if (total_loss > 0) flow.ideal = gain * loss / total_loss;
    moved += f.first;
    plan.flows.push_back(std::move(flow));
  }
  plan.moved = static_cast<double>(moved) / kSpace;
  for (auto& [id, p] : nodes) plan.nodes.push_back(std::move(p));
  return plan;
}

}  // namespace kv
