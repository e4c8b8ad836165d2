#include "tools/inspect.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>

#include "common/config.hpp"
#include "common/hash.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "common/transfer.hpp"
#include "tools/admin_client.hpp"
#include "tools/flows.hpp"
#include "tools/progress.hpp"

namespace kv::tools {
namespace {

namespace json = boost::json;

// A weight in the plan's table; "-": not in that ring.
std::string weight(std::uint32_t w) { return w ? std::to_string(w) : std::string("-"); }

std::shared_ptr<const Ring> load(const std::string& path) { return Ring::build(load_ring_config(path)); }

}  // namespace

int print_shares(const std::string& path) {
  const auto ring = load(path);
  const auto own = ring->ownership();
  std::uint64_t total_weight = 0;
  std::vector<std::uint32_t> weights;
  for (const auto& n : ring->nodes()) {
    total_weight += n.weight;
    weights.push_back(n.weight);
  }
  double mx = 0;
  if (ring->replicas() == 1) {
    std::printf("%-20s %-24s %6s %8s %10s %10s\n", "node", "address", "weight", "points", "ownership", "vs ideal");
    for (std::size_t i = 0; i < own.size(); ++i) {
      const auto& n = ring->node(static_cast<std::uint32_t>(i));
      const double ideal = static_cast<double>(n.weight) / static_cast<double>(total_weight);
      std::printf("%-20s %-24s %6u %8llu %9.3f%% %9.4fx\n", n.id.c_str(), n.address.str().c_str(), n.weight,
                  static_cast<unsigned long long>(std::uint64_t{n.weight} * ring->vnodes()), own[i] * 100.0, own[i] / ideal);
      mx = std::max(mx, own[i] / ideal);
    }
    std::printf("%zu nodes, %zu ring points (vnodes %u), worst node %.4fx its ideal share\n", own.size(),
                ring->point_count(), ring->vnodes(), mx);
    return 0;
  }
  // Replicated: "first" is the share of keys whose replica set starts at the node (the owner with
  // replicas 1), "holds" the share of keys it keeps a copy of, against the ideal for its weight.
  const auto held = ring->holding();
  const auto ideal = ideal_holding(weights, ring->replicas());
  std::printf("%-20s %-24s %-10s %6s %8s %10s %10s %10s\n", "node", "address", "zone", "weight", "points", "first",
              "holds", "vs ideal");
  for (std::size_t i = 0; i < own.size(); ++i) {
    const auto& n = ring->node(static_cast<std::uint32_t>(i));
    std::printf("%-20s %-24s %-10s %6u %8llu %9.3f%% %9.3f%% %9.4fx\n", n.id.c_str(), n.address.str().c_str(),
                n.zone.empty() ? "-" : n.zone.c_str(), n.weight,
                static_cast<unsigned long long>(std::uint64_t{n.weight} * ring->vnodes()), own[i] * 100.0, held[i] * 100.0,
                held[i] / ideal[i]);
    mx = std::max(mx, held[i] / ideal[i]);
  }
  std::printf("%zu nodes in %u zones, replicas %u, %zu ring points (vnodes %u), worst node %.4fx its ideal share\n",
              own.size(), ring->zone_count(), ring->replicas(), ring->point_count(), ring->vnodes(), mx);
  if (ring->zone_count() < own.size())
    std::printf("the ideal is by weight alone: zones make shares uneven on purpose (one copy per zone first)\n");
  return 0;
}

int print_owners(const std::string& path, const std::vector<std::string>& keys) {
  const auto ring = load(path);
  for (const auto& k : keys) {
    const auto h = hash_key(k);
    const auto set = ring->replicas_of_hash(h);
    const auto& n = ring->node(set.node[0]);
    std::printf("%s\t%s\t%s\t%016llx", k.c_str(), n.id.c_str(), n.address.str().c_str(), static_cast<unsigned long long>(h));
    if (ring->replicas() > 1) {  // a fifth column: the replica set, in placement order
      std::string ids;
      for (auto r : set) ids.append(ids.empty() ? "" : ",").append(ring->node(r).id);
      std::printf("\t%s", ids.c_str());
    }
    std::printf("\n");
  }
  return 0;
}

namespace {

// A replicated change as plan shows it: apply's copies (tools/flows.hpp) and each node's gains and
// losses, as shares of the key space.
struct ReplicaPlan {
  struct Copy {
    std::string from, to;
    double share = 0;
    std::size_t ranges = 0;
  };
  std::vector<Copy> copies;
  std::map<std::string, double> gains, losses;
  double changed = 0, copied = 0;
};

ReplicaPlan replica_plan(const std::vector<ReplicaMove>& moves, const ReplicaChange& change) {
  ReplicaPlan out;
  for (const auto& m : moves) out.changed += range_share(m.range);
  auto share = [](const std::vector<HashRange>& ranges) {
    double s = 0;
    for (const auto& r : ranges) s += range_share(r);
    return s;
  };
  for (const auto& f : change.copies) {
    out.copies.push_back({f.from_id, f.to_id, share(f.ranges), f.ranges.size()});
    out.copied += out.copies.back().share;
  }
  for (const auto& g : change.gains) out.gains[g.id] = share(g.ranges);
  for (const auto& l : change.losses) out.losses[l.id] = share(l.ranges);
  return out;
}

// plan --count: per node, the keys and bytes it gains and loses, as the nodes of OLD hold them now.
struct Counted {
  std::uint64_t gains_keys = 0, gains_bytes = 0, losses_keys = 0, losses_bytes = 0;
};

// `change`: null when neither ring has replicas (then the owner moves of `moves` count).
std::map<std::string, Counted> count_on_nodes(const Ring& from, const Ring& to, const std::vector<Move>& moves,
                                              const ReplicaChange* change, const CountOptions& o) {
  NodeAdmins nodes([&o](const HostPort& a) { return http_exchange(a, o.timeout, o.token); }, RetryPolicy{});
  std::map<std::string, Counted> out;
  auto gain = [&](const Flow& f) {  // measured on its source
    const auto s = nodes.node(f.from_id, f.from).measure(f.ranges);
    out[f.to_id].gains_keys += s.keys;
    out[f.to_id].gains_bytes += s.bytes;
    return s;
  };
  if (!change) {
    for (const auto& f : group_flows(moves, from, to)) {
      const auto s = gain(f);
      out[f.from_id].losses_keys += s.keys;
      out[f.from_id].losses_bytes += s.bytes;
    }
    return out;
  }
  for (const auto& f : change->primary) gain(f);
  for (const auto& l : change->losses) {
    const auto s = nodes.node(l.id, l.address).measure(l.ranges);
    out[l.id].losses_keys += s.keys;
    out[l.id].losses_bytes += s.bytes;
  }
  return out;
}

}  // namespace

int print_plan(const std::string& from_path, const std::string& to_path, bool as_json, bool list_ranges,
               const std::optional<CountOptions>& count) {
  const auto from_cfg = load_ring_config(from_path), to_cfg = load_ring_config(to_path);
  check_change(from_cfg, from_path, to_cfg, to_path);
  const auto from = Ring::build(from_cfg), to = Ring::build(to_cfg);
  const Plan p = make_plan(from_cfg, *from, to_cfg, *to);
  const bool replicated = p.replicas_before > 1 || p.replicas_after > 1;
  const std::vector<ReplicaMove> moves = replicated ? replica_moves(*from, *to) : std::vector<ReplicaMove>{};
  const ReplicaChange change = replicated ? replica_change(moves, *from, *to) : ReplicaChange{};
  const ReplicaPlan rp = replicated ? replica_plan(moves, change) : ReplicaPlan{};
  const std::map<std::string, Counted> counted =
      count ? count_on_nodes(*from, *to, p.moves, replicated ? &change : nullptr, *count) : std::map<std::string, Counted>{};
  auto counted_of = [&](const std::string& id) { return counted.count(id) ? counted.at(id) : Counted{}; };
  auto gained = [&](const std::string& id) { return rp.gains.count(id) ? rp.gains.at(id) : 0.0; };
  auto lost = [&](const std::string& id) { return rp.losses.count(id) ? rp.losses.at(id) : 0.0; };

  if (as_json) {
    json::object o;
    o["from"] = json::object{{"file", from_path}, {"fingerprint", p.from_fingerprint}};
    o["to"] = json::object{{"file", to_path}, {"fingerprint", p.to_fingerprint}};
    json::array nodes;
    for (const auto& n : p.nodes)
      nodes.push_back(json::object{{"id", n.id},
                                   {"address", n.address},
                                   {"weight_before", n.weight_before},
                                   {"weight_after", n.weight_after},
                                   {"before", n.before},
                                   {"after", n.after},
                                   {"ideal_before", n.ideal_before},
                                   {"ideal_after", n.ideal_after},
                                   {"held_before", n.held_before},
                                   {"held_after", n.held_after},
                                   {"ideal_held_before", n.ideal_held_before},
                                   {"ideal_held_after", n.ideal_held_after}});
    if (replicated)
      for (std::size_t i = 0; i < p.nodes.size(); ++i) {
        auto& node = nodes[i].as_object();
        node["gains"] = gained(p.nodes[i].id);
        node["losses"] = lost(p.nodes[i].id);
        node["ideal_gains"] = std::max(0.0, p.nodes[i].ideal_held_after - p.nodes[i].ideal_held_before);
        node["ideal_losses"] = std::max(0.0, p.nodes[i].ideal_held_before - p.nodes[i].ideal_held_after);
      }
    if (count)
      for (std::size_t i = 0; i < p.nodes.size(); ++i) {
        auto& node = nodes[i].as_object();
        const Counted c = counted_of(p.nodes[i].id);
        node["gains_keys"] = c.gains_keys;
        node["gains_bytes"] = c.gains_bytes;
        node["losses_keys"] = c.losses_keys;
        node["losses_bytes"] = c.losses_bytes;
      }
    o["nodes"] = std::move(nodes);
    if (replicated) {
      json::array copies;
      for (const auto& c : rp.copies)
        copies.push_back(json::object{{"from", c.from}, {"to", c.to}, {"share", c.share}, {"ranges", c.ranges}});
      o["replica_copies"] = std::move(copies);
      o["replica_changed"] = rp.changed;
      o["replica_copied"] = rp.copied;
    }
    o["replicas_before"] = p.replicas_before;
    o["replicas_after"] = p.replicas_after;
    json::array flows;
    for (const auto& f : p.flows)
      flows.push_back(json::object{{"from", f.from}, {"to", f.to}, {"share", f.share}, {"ideal", f.ideal}, {"ranges", f.ranges}});
    o["flows"] = std::move(flows);
    o["moved"] = p.moved;
    o["ideal_moved"] = p.ideal_moved;
    o["range_count"] = p.moves.size();
    if (list_ranges) {
      json::array ranges;
      for (const auto& m : p.moves)
        ranges.push_back(json::object{{"lo", hex64(m.range.lo)},
                                      {"hi", hex64(m.range.hi)},
                                      {"from", from->node(m.from).id},
                                      {"to", to->node(m.to).id}});
      o["ranges"] = std::move(ranges);
    }
    std::cout << json::serialize(o) << std::endl;
    return 0;
  }

  std::printf("plan: %s (ring %s) -> %s (ring %s)\n\n", from_path.c_str(), p.from_fingerprint.c_str(), to_path.c_str(),
              p.to_fingerprint.c_str());
  std::printf("%-16s %-22s %9s %21s %21s\n", "node", "address", "weight", "ownership", "ideal");
  for (const auto& n : p.nodes)
    std::printf("%-16s %-22s %4s -> %-3s %8.3f%% -> %7.3f%% %8.3f%% -> %7.3f%%\n", n.id.c_str(), n.address.c_str(),
                weight(n.weight_before).c_str(), weight(n.weight_after).c_str(), n.before * 100, n.after * 100,
                n.ideal_before * 100, n.ideal_after * 100);
  if (p.replicas_before > 1 || p.replicas_after > 1) {
    // With replication each node holds copies of more than the keys it owns first.
    std::printf("\nwith replication (replicas %u -> %u): the share of the key space each node holds a copy of\n",
                p.replicas_before, p.replicas_after);
    std::printf("%-16s %21s %21s %21s %17s %17s\n", "node", "holds", "ideal", "vs ideal", "gains (ideal)",
                "loses (ideal)");
    for (const auto& n : p.nodes) {
      auto ratio = [](double held, double ideal) { return ideal > 0 ? held / ideal : 0.0; };
      std::printf("%-16s %8.3f%% -> %7.3f%% %8.3f%% -> %7.3f%% %8.4fx -> %7.4fx %7.3f%% (%6.3f%%) %7.3f%% (%6.3f%%)\n",
                  n.id.c_str(), n.held_before * 100, n.held_after * 100, n.ideal_held_before * 100,
                  n.ideal_held_after * 100, ratio(n.held_before, n.ideal_held_before),
                  ratio(n.held_after, n.ideal_held_after), gained(n.id) * 100,
                  std::max(0.0, n.ideal_held_after - n.ideal_held_before) * 100, lost(n.id) * 100,
                  std::max(0.0, n.ideal_held_before - n.ideal_held_after) * 100);
    }
    // What apply copies: each changing range from a majority of its old set to the members its new
    // set needs (tools/flows.hpp), so more than the gains when a range has several sources.
    std::printf("\napply copies (source -> target)\n%-16s %-16s %10s %8s\n", "from", "to", "share", "ranges");
    for (const auto& c : rp.copies)
      std::printf("%-16s %-16s %9.3f%% %8zu\n", c.from.c_str(), c.to.c_str(), c.share * 100, c.ranges);
    double gains = 0;
    for (const auto& [id, share] : rp.gains) gains += share;
    std::printf("\n%.3f%% of the key space changes replica set; nodes gain copies of %.3f%% in all; apply copies "
                "%.3f%% (%.2fx the gains)\n",
                rp.changed * 100, gains * 100, rp.copied * 100, gains > 0 ? rp.copied / gains : 0.0);
    std::printf("\nthe owner moves below are of each key's first replica\n");
  }
  if (count) {
    std::printf("\nkeys and bytes (as stored), counted on the nodes now\n%-16s %14s %14s %14s %14s\n", "node",
                "gains keys", "gains bytes", "loses keys", "loses bytes");
    for (const auto& n : p.nodes) {
      const Counted c = counted_of(n.id);
      std::printf("%-16s %14llu %14s %14llu %14s\n", n.id.c_str(), static_cast<unsigned long long>(c.gains_keys),
                  human_bytes(c.gains_bytes).c_str(), static_cast<unsigned long long>(c.losses_keys),
                  human_bytes(c.losses_bytes).c_str());
    }
  }
  if (p.flows.empty()) {
    std::printf("\nnothing moves\n");
    return 0;
  }
  std::printf("\n%-16s %-16s %10s %10s %8s %8s\n", "from", "to", "share", "ideal", "vs ideal", "ranges");
  for (const auto& f : p.flows)
    std::printf("%-16s %-16s %9.3f%% %9.3f%% %7.4fx %8zu\n", f.from.c_str(), f.to.c_str(), f.share * 100, f.ideal * 100,
                f.ideal > 0 ? f.share / f.ideal : 0.0, f.ranges);
  std::printf("\n%.3f%% of the key space moves (ideal %.3f%%, %.4fx) in %zu ranges\n", p.moved * 100, p.ideal_moved * 100,
              p.ideal_moved > 0 ? p.moved / p.ideal_moved : 0.0, p.moves.size());
  if (list_ranges) {
    std::printf("\n%-16s %-16s %-16s %-16s\n", "lo", "hi", "from", "to");
    for (const auto& m : p.moves)
      std::printf("%s %s %-16s %-16s\n", hex64(m.range.lo).c_str(), hex64(m.range.hi).c_str(),
                  from->node(m.from).id.c_str(), to->node(m.to).id.c_str());
  }
  return 0;
}


}  // namespace kv::tools
