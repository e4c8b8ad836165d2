#include "tools/apply.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include "common/rebalance.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "common/storage_key.hpp"
#include "tools/admin_client.hpp"
#include "tools/log.hpp"
#include "tools/progress.hpp"
#include "tools/resume.hpp"

namespace kv::tools {
namespace {

namespace json = boost::json;
using rebalance::Drop;
using rebalance::Phase;
using rebalance::Step;

// The ranges moving from one node to another, with the nodes' addresses.
struct Flow {
  std::string from_id, to_id;
  HostPort from, to;
  std::vector<HashRange> ranges;
  std::uint64_t keys = 0;     // counted before copying
  std::uint64_t written = 0;  // stored on the new owner (the rest were there already, or deleted)
};

class Apply {
 public:
  explicit Apply(const ApplyOptions& o)
      : opt_(o), nodes_([&o](const HostPort& a) { return http_exchange(a, o.timeout, o.token); }, RetryPolicy{}) {
    for (const auto& a : o.proxies) proxies_.emplace_back(a, http_exchange(a, o.timeout, o.token));
  }

  int run() {
    // NEW's text goes to the proxies as given, so it is read once with the config.
    RingConfig from_cfg = load_ring_config(opt_.from_path), to_cfg = load_ring_config(opt_.to_path, &to_yaml_);
    check_change(from_cfg, opt_.from_path, to_cfg, opt_.to_path);
    const auto from_ring = Ring::build(from_cfg), to_ring = Ring::build(to_cfg);
    const Plan plan = make_plan(from_cfg, *from_ring, to_cfg, *to_ring);
    if (plan.from_fingerprint == plan.to_fingerprint) {
      log("OLD and NEW are the same ring (" + plan.from_fingerprint + "): nothing to do");
      return 0;
    }
    for (const auto& mv : plan.moves) {
      const auto& a = from_ring->node(mv.from);
      const auto& b = to_ring->node(mv.to);
      auto& f = flows_[{a.id, b.id}];
      if (f.ranges.empty()) f = Flow{a.id, b.id, a.address, b.address, {}};
      f.ranges.push_back(mv.range);
    }
    from_fp_ = plan.from_fingerprint;
    to_fp_ = plan.to_fingerprint;
    log("rebalance " + opt_.from_path + " (ring " + from_fp_ + ") -> " + opt_.to_path + " (ring " + to_fp_ + "): " +
        percent(plan.moved) + " of the key space moves (ideal " + percent(plan.ideal_moved) + ") in " +
        std::to_string(plan.moves.size()) + " ranges");

    const Resume where = where_proxies_stand();
    if (where.start == StartAt::clear) {
      // Fresh start. The new owners must hold nothing in the ranges they are about to receive: an
      // earlier aborted rebalance may have left copies there that deletes since have not reached.
      step_log("clearing the moving ranges on their new owners");
      for (auto& [ids, f] : flows_) nodes_.node(f.to_id, f.to).drop(Drop::all, f.ranges);
    } else {
      log(where.resuming_line());
    }
    if (where.start <= StartAt::begin) {
      proxy_step(Step::begin, from_fp_, to_yaml_,
                 std::string(phase_name(Phase::dual_write)) + ": writes of moving keys go to both owners");
      copy();
    }
    if (where.start <= StartAt::read_new) {
      proxy_step(Step::read_new, to_fp_, {},
                 std::string(phase_name(Phase::read_new)) + ": reads of moving keys go to their new owners");
      proxy_step(Step::finish, to_fp_, {},
                 std::string(step_name(Step::finish)) + ": every proxy routes by NEW and saved it as its ring file");
    }
    step_log("removing the moved ranges from their old owners");
    for (auto& [ids, f] : flows_) {
      nodes_.node(f.from_id, f.from).drop(Drop::all, f.ranges);
      nodes_.node(f.to_id, f.to).drop(Drop::tombstones, f.ranges);
    }
    summary(plan, where.copied());
    return 0;
  }

 private:
  static std::string percent(double share) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f%%", share * 100);
    return buf;
  }

  void log(const std::string& line) const { std::cerr << "ring-rebalance: " << line << std::endl; }
  void step_log(const std::string& what) { log("step: " + what); }

  // Asks every proxy where it stands; throws when this rebalance cannot start or go on from there.
  Resume where_proxies_stand() {
    std::vector<ProxyPosition> positions;
    for (auto& p : proxies_) positions.push_back({p.address().str(), p.position()});
    Resume where = decide_resume(positions, {from_fp_, opt_.from_path, to_fp_, opt_.to_path});
    if (!where.refusal.empty()) throw std::runtime_error(where.refusal);
    return where;
  }

  void proxy_step(Step step, const std::string& fingerprint, std::string_view yaml, const std::string& what) {
    for (auto& p : proxies_) p.step(step, fingerprint, yaml);
    step_log(what + " (" + std::to_string(proxies_.size()) + " proxies acknowledged)");
  }

  void copy() {
    std::uint64_t total = 0;
    for (auto& [ids, f] : flows_) {
      f.keys = nodes_.node(f.from_id, f.from).count(f.ranges);
      total += f.keys;
    }
    step_log("copying " + std::to_string(total) + " keys in " + std::to_string(flows_.size()) + " flows");
    Progress progress(Log(), opt_.progress_bar);
    progress.start(total);
    for (auto& [ids, f] : flows_) {
      NodeAdmin& from = nodes_.node(f.from_id, f.from);
      NodeAdmin& to = nodes_.node(f.to_id, f.to);
      std::size_t first = 0;  // ranges before this one are done
      std::string after;      // resume after this stored key, within ranges[first]
      while (first < f.ranges.size()) {
        const std::size_t end = std::min(f.ranges.size(), first + kRangesPerRequest);
        const ScanBatch batch = from.scan(std::span(f.ranges).subspan(first, end - first), opt_.batch_keys, opt_.batch_bytes, after);
        if (batch.count > 0) f.written += to.ingest(batch.records);
        progress.add(batch.count, batch.records.size());
        if (batch.done) {
          first = end;
          after.clear();
        } else {
          after = batch.cursor;
          const std::uint64_t h = read_be64(after);
          while (first < f.ranges.size() && f.ranges[first].hi < h) ++first;
        }
        if (opt_.max_rate > 0) {  // throttle: never ahead of max_rate keys per second
          const double due = static_cast<double>(progress.keys()) / opt_.max_rate - progress.seconds();
          if (due > 0) std::this_thread::sleep_for(std::chrono::duration<double>(due));
        }
      }
    }
    progress.finish();
    copied_keys_ = progress.keys();
    copied_bytes_ = progress.bytes();
    copy_seconds_ = progress.seconds();
  }

  void summary(const Plan& plan, bool copied_before) {
    std::uint64_t written = 0;
    for (const auto& [ids, f] : flows_) written += f.written;
    log("done: ring " + to_fp_ + " on " + std::to_string(proxies_.size()) + " proxies; " +
        (copied_before ? std::string("the copy had finished in an earlier run")
                       : std::to_string(copied_keys_) + " keys (" + human_bytes(static_cast<double>(copied_bytes_)) +
                             ") copied in " + std::to_string(copy_seconds_).substr(0, 5) + " s, " +
                             std::to_string(written) + " written, " + std::to_string(copied_keys_ - written) +
                             " already there or deleted meanwhile"));
    if (!opt_.json) return;
    json::object o;
    o["status"] = "success";
    o["from"] = from_fp_;
    o["to"] = to_fp_;
    o["moved_share"] = plan.moved;
    o["ideal_share"] = plan.ideal_moved;
    o["copied"] = !copied_before;
    o["keys_copied"] = copied_keys_;
    o["keys_written"] = written;
    o["bytes_copied"] = copied_bytes_;
    o["copy_seconds"] = copy_seconds_;
    json::array flows;
    for (const auto& [ids, f] : flows_) {
      json::object fo;
      fo["from"] = f.from_id;
      fo["to"] = f.to_id;
      fo["ranges"] = f.ranges.size();
      fo["keys"] = f.keys;
      fo["written"] = f.written;
      flows.push_back(std::move(fo));
    }
    o["flows"] = std::move(flows);
    std::cout << json::serialize(o) << std::endl;
  }

  const ApplyOptions& opt_;
  std::string from_fp_, to_fp_, to_yaml_;
  std::map<std::pair<std::string, std::string>, Flow> flows_;
  std::vector<ProxyAdmin> proxies_;
  NodeAdmins nodes_;
  std::uint64_t copied_keys_ = 0, copied_bytes_ = 0;
  double copy_seconds_ = 0;
};

}  // namespace

int apply(const ApplyOptions& options) {
  try {
    return Apply(options).run();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    std::cerr << "ring-rebalance: apply failed: " << e.what() << "\nring-rebalance: run the same command again to go on"
              << std::endl;
    return 1;
  }
}

}  // namespace kv::tools
