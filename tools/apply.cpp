// ring-rebalance apply as the list of its steps (apply.hpp). Each step is a function below run();
// what they share (the plan, the flows, the clients) is a member of one run.
#include "tools/apply.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
#include <string>

#include "common/config.hpp"
#include "common/rebalance.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "tools/admin_client.hpp"
#include "tools/flows.hpp"
#include "tools/log.hpp"
#include "tools/progress.hpp"
#include "tools/resume.hpp"
#include "tools/summary.hpp"

namespace kv::tools {
namespace {

using rebalance::Drop;
using rebalance::Phase;
using rebalance::Step;

std::string percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f%%", share * 100);
  return buf;
}

class Apply {
 public:
  // Makes the clients; none connects before its first request.
  explicit Apply(const ApplyOptions& o)
      : opt_(o), nodes_([&o](const HostPort& a) { return http_exchange(a, o.timeout, o.token); }, RetryPolicy{}) {
    for (const auto& a : o.proxies) proxies_.emplace_back(a, http_exchange(a, o.timeout, o.token));
  }

  int run() {
    if (!plan()) return 0;
    const Resume where = where_proxies_stand();
    if (replicated_) pause_purges();
    if (where.start == StartAt::clear) clear_new_owners();
    else log_.line(where.resuming_line());
    if (replicated_ && where.start <= StartAt::begin) adopt_new_ring_on_nodes();
    if (where.start <= StartAt::begin) {
      begin();
      copy();
    }
    if (where.start <= StartAt::read_new) {
      read_new();
      finish();
    }
    remove_moved_ranges();
    if (replicated_) resume_purges();
    summary(where.copied());
    return 0;
  }

 private:
  // Reads both files and what moves between them; false when they are the same ring.
  bool plan() {
    // NEW's text goes to the proxies as given, so it is read once with the config.
    RingConfig from_cfg = load_ring_config(opt_.from_path), to_cfg = load_ring_config(opt_.to_path, &to_yaml_);
    check_change(from_cfg, opt_.from_path, to_cfg, opt_.to_path);
    const auto from_ring = Ring::build(from_cfg), to_ring = Ring::build(to_cfg);
    to_nodes_ = to_cfg.nodes;
    from_nodes_ = from_cfg.nodes;
    from_ring_ = from_ring;
    to_ring_ = to_ring;
    plan_ = make_plan(from_cfg, *from_ring, to_cfg, *to_ring);
    rings_ = {plan_.from_fingerprint, opt_.from_path, plan_.to_fingerprint, opt_.to_path};
    if (plan_.from_fingerprint == plan_.to_fingerprint) {
      log_.line("OLD and NEW are the same ring (" + plan_.from_fingerprint + "): nothing to do");
      return false;
    }
    replicated_ = from_cfg.replicas > 1 || to_cfg.replicas > 1;
    if (replicated_) {
      const auto moves = replica_moves(*from_ring, *to_ring);
      replica_ = replica_change(moves, *from_ring, *to_ring);
      for (const auto& m : moves) replica_share_ += range_share(m.range);
      flows_ = replica_.copies;
    } else {
      flows_ = group_flows(plan_.moves, *from_ring, *to_ring);
    }
    std::string what = percent(plan_.moved) + " of the key space moves (ideal " + percent(plan_.ideal_moved) + ") in " +
                       std::to_string(plan_.moves.size()) + " ranges";
    if (replicated_) {
      std::size_t ranges = 0;
      for (const auto& g : replica_.copies) ranges += g.ranges.size();
      what = "replicas " + std::to_string(from_cfg.replicas) + " -> " + std::to_string(to_cfg.replicas) + ": " +
             percent(replica_share_) + " of the key space changes replica set; " + std::to_string(replica_.copies.size()) +
             " copies (source -> target) of " + std::to_string(ranges) + " ranges";
    }
    log_.line("rebalance " + opt_.from_path + " (ring " + rings_.from_fingerprint + ") -> " + opt_.to_path + " (ring " +
              rings_.to_fingerprint + "): " + what);
    return true;
  }

  // Asks every proxy where it stands; throws when this rebalance cannot start or go on from there.
  Resume where_proxies_stand() {
    std::vector<ProxyPosition> positions;
    for (auto& p : proxies_) positions.push_back({p.address().str(), p.position()});
    Resume where = decide_resume(positions, rings_);
    if (!where.refusal.empty()) throw std::runtime_error(where.refusal);
    return where;
  }

  // The new owners must hold nothing in the ranges they are about to receive: an earlier aborted
  // rebalance may have left copies there that deletes since have not reached.
  void clear_new_owners() {
    log_.step("clearing the moving ranges on their new owners");
    if (replicated_) {  // only the members new to a range: the others hold its live data
      for (const auto& g : replica_.gains) nodes_.node(g.id, g.address).drop(Drop::all, g.ranges);
      return;
    }
    for (const auto& f : flows_) nodes_.node(f.to_id, f.to).drop(Drop::all, f.ranges);
  }

  void begin() {
    proxy_step(Step::begin, rings_.from_fingerprint, to_yaml_,
               std::string(phase_name(Phase::dual_write)) +
                   (replicated_ ? ": requests of keys whose replica set changes need a majority of the old set and of the new"
                                : ": writes of moving keys go to both owners"));
  }

  void copy() {
    Progress progress(log_, opt_.progress_bar);
    copy_ = copy_flows(flows_, nodes_, opt_.copy, progress, log_);
  }

  void read_new() {
    proxy_step(Step::read_new, rings_.to_fingerprint, {},
               std::string(phase_name(Phase::read_new)) +
                   (replicated_ ? ": the copy is done; still both majorities" : ": reads of moving keys go to their new owners"));
  }

  void finish() {
    proxy_step(Step::finish, rings_.to_fingerprint, {},
               std::string(step_name(Step::finish)) + ": every proxy routes by NEW and saved it as its ring file");
  }

  // The old owners keep no copy of what they no longer own. Then the tombstones go: every delete
  // leaves one, so that a ring change's copy never brings an older value back after it; with every
  // proxy on NEW and no change in progress, no copy is left to guard against, on any node.
  void remove_moved_ranges() {
    if (replicated_) {
      adopt_new_ring_on_nodes();
      // Tombstones stay: with replicas they are what keeps a replica that missed a delete from
      // bringing the value back (anti-entropy, read repair); they go by evidence (node/floors.hpp).
      log_.step("removing the moved ranges from the replicas that left them");
      for (const auto& l : replica_.losses) nodes_.node(l.id, l.address).drop(Drop::all, l.ranges);
      return;
    }
    log_.step("removing the moved ranges from their old owners");
    for (const auto& f : flows_) nodes_.node(f.from_id, f.from).drop(Drop::all, f.ranges);
    const HashRange whole_ring{0, ~std::uint64_t{0}};
    for (const auto& n : to_nodes_) nodes_.node(n.id, n.address).drop(Drop::tombstones, {&whole_ring, 1});
    log_.step("purged the tombstones on the " + std::to_string(to_nodes_.size()) + " nodes of NEW");
  }

  // A node that purges tombstones does so on the evidence of its own ring's replica sets, while a
  // change's requests go to the union of the old and the new set: it could purge a tombstone that a
  // member new to the set never received, which then holds the deleted value (node/floors.hpp). So
  // every node of either ring pauses its purges before any node adopts NEW or any proxy stores to the
  // new sets, each answering once no purge of its own is under way (node/purge_pause.hpp), and they
  // resume once the moved ranges are dropped. A node that does not answer may be alive, cut off from
  // this tool only; its purges need every peer of the set, and a paused one refuses: so with purging
  // on, every replica set of either ring must have at most one member that did not pause.
  // The change's id is one no earlier change had (tools/resume.hpp, change_id), or the one this
  // change paused with in a run that stopped.
  void pause_purges() {
    std::vector<PurgeState> states;
    bool purging = false;
    each_node_of_both_rings([&](const NodeConfig& n) {
      if (auto s = nodes_.node(n.id, n.address).purge_state()) {
        purging = purging || s->purging;
        states.push_back(std::move(*s));
      }
    });
    change_ = change_id(rings_, states);
    std::set<std::string> missing;
    const std::size_t all = each_node_of_both_rings([&](const NodeConfig& n) {
      if (!nodes_.node(n.id, n.address).pause_purges(change_)) missing.insert(n.id);
    });
    const std::size_t paused = all - missing.size();
    log_.step("tombstone purges paused on " + std::to_string(paused) + " of " + std::to_string(all) +
              " nodes, until the change ends" + (missing.empty() ? "" : " (not answering: " + joined(missing) + ")") +
              "; change " + change_);
    if (!purging || missing.size() < 2) return;
    for (const auto* ring : {from_ring_.get(), to_ring_.get()})
      for (std::size_t i = 0; i < ring->point_count(); ++i) {
        std::set<std::string> unpaused;
        for (const std::uint32_t m : ring->replicas_of_hash(ring->point(i)))
          if (missing.count(ring->node(m).id)) unpaused.insert(ring->node(m).id);
        if (unpaused.size() >= 2)
          throw AdminError("tombstone purges could not be paused on " + joined(unpaused) + ", replicas of the same keys in " +
                           (ring == from_ring_.get() ? "OLD" : "NEW") +
                           ", and the nodes purge tombstones (kvnode without --keep-tombstones): if they are up but "
                           "cut off from here, they could purge tombstones that the change still needs "
                           "(node/purge_pause.hpp). Run again once they answer");
      }
  }

  // The end of the change: every node that paused for it purges again. One that does not answer
  // stays paused (durably) until a run of the same command reaches it.
  void resume_purges() {
    std::set<std::string> missing;
    const std::size_t all = each_node_of_both_rings([&](const NodeConfig& n) {
      try {
        if (!nodes_.node(n.id, n.address).resume_purges(change_)) missing.insert(n.id);
      } catch (const AdminError& e) {  // paused for another change: that one's run resumes it
        log_.line(e.what());
      }
    });
    if (missing.empty()) return log_.step("tombstone purges resumed on the " + std::to_string(all) + " nodes");
    log_.line("tombstone purges stay paused on " + joined(missing) +
              " (not answering) until they are up: each resumes once it sees a peer resumed for this change "
              "(or run the same command again)");
  }

  // Calls `fn` once per node id of OLD and NEW (a node in both, once); returns how many.
  template <class Fn>
  std::size_t each_node_of_both_rings(Fn&& fn) const {
    std::set<std::string> seen;
    for (const auto* list : {&from_nodes_, &to_nodes_})
      for (const auto& n : *list)
        if (seen.insert(n.id).second) fn(n);
    return seen.size();
  }

  static std::string joined(const std::set<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
    return out;
  }

  // Nodes whose anti-entropy follows their own --ring adopt NEW (node/replication.hpp: each in place,
  // serving throughout, its hash trees of NEW's sets built beside the running ones), one at a time,
  // each serving on NEW before the next, and before any proxy asks a new replica: proxies still route
  // by OLD. From then on each node's anti-entropy exchanges by NEW's sets (moving only newer versions,
  // as a copy does), a member new to a set learns from its peers that it is new (node/incarnation.hpp)
  // and serves, and no node pulls back by OLD what it is about to lose. A node leaving the ring keeps
  // OLD: the others no longer exchange with it. Taken again before the ranges are dropped (a no-op
  // where done). A node adopting stays up, so the others need not wait for one that is down.
  void adopt_new_ring_on_nodes() {
    std::size_t adopted = 0;
    std::vector<NodeAdmin*> already;  // on NEW already: a member new to the ring serves once its peers answered
    for (const auto& n : to_nodes_) {
      NodeAdmin& node = nodes_.node(n.id, n.address);
      // A node of NEW that is down (killed, starting again) is waited for: back on OLD's file, it
      // would exchange by OLD's sets.
      if (!node.up_within(opt_.node_wait))
        throw AdminError(n.id + " (" + n.address.str() + ") did not answer /health within --node-wait-ms (" +
                         std::to_string(opt_.node_wait.count()) + " ms): it must adopt NEW; run again once it is up");
      if (!node.ring_running()) continue;
      if (!node.adopt_ring(to_yaml_)) {
        already.push_back(&node);
        continue;
      }
      node.wait_serving(rings_.to_fingerprint, std::chrono::seconds(120));
      ++adopted;
    }
    for (NodeAdmin* node : already) node->wait_serving(rings_.to_fingerprint, std::chrono::seconds(120));
    if (adopted + already.size() > 0)
      log_.step("the nodes that follow a ring of their own run on NEW, serving (" + std::to_string(adopted) +
                " adopted it in place, " + std::to_string(already.size()) + " on it already)");
  }

  void summary(bool copied_before) {
    const ApplySummary s{rings_.from_fingerprint, rings_.to_fingerprint, plan_.moved, plan_.ideal_moved,
                         proxies_.size(), flows_, copy_, copied_before};
    log_.line(summary_line(s));
    if (opt_.json) std::cout << summary_json(s) << std::endl;
  }

  // Takes `step` on every proxy, in order; each answers once it has.
  void proxy_step(Step step, const std::string& fingerprint, std::string_view yaml, const std::string& what) {
    for (auto& p : proxies_) p.step(step, fingerprint, yaml);
    log_.step(what + " (" + std::to_string(proxies_.size()) + " proxies acknowledged)");
  }

  const ApplyOptions& opt_;
  Log log_;
  Plan plan_;
  RingPair rings_;
  std::string change_;  // the id the nodes' purges pause for (pause_purges)
  std::string to_yaml_;
  std::vector<Flow> flows_;  // replicated: the copies (source -> target)
  bool replicated_ = false;   // replicas above 1 in either ring: replica sets move (replica_)
  ReplicaChange replica_;
  double replica_share_ = 0;  // of the key space, changing replica set
  std::vector<NodeConfig> to_nodes_;    // NEW's nodes
  std::vector<NodeConfig> from_nodes_;  // OLD's nodes
  std::shared_ptr<const Ring> from_ring_, to_ring_;
  std::vector<ProxyAdmin> proxies_;
  NodeAdmins nodes_;
  CopyResult copy_;  // this run's copy; all zero when an earlier run did it
};

}  // namespace

int apply(const ApplyOptions& options) {
  const Log log;
  try {
    return Apply(options).run();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    log.line(std::string("apply failed: ") + e.what());
    log.line("run the same command again to go on");
    return 1;
  }
}

}  // namespace kv::tools
