#include "tools/apply.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "tools/http_client.hpp"
#include "tools/log.hpp"
#include "tools/progress.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "common/storage_key.hpp"
#include "common/transfer.hpp"

namespace kv::tools {
namespace {

namespace json = boost::json;

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The most ranges sent in one request (the node accepts up to kMaxRangesPerRequest).
constexpr std::size_t kRangesPerRequest = 4096;

std::string detail_of(const HttpResponse& r) {
  boost::system::error_code ec;
  const auto v = json::parse(r.body, ec);
  if (!ec && v.is_object())
    if (const auto* d = v.as_object().if_contains("detail"); d && d->is_string()) return std::string(d->as_string());
  return r.body.substr(0, 200);
}

// Every request apply makes is idempotent, so transient failures (no connection, 503 while a proxy
// drains) are retried a few times with a growing pause before giving up.
HttpResponse call(HttpClient& c, const std::string& label, std::string_view method, std::string_view target,
                  std::string_view body = {}, std::string_view content_type = "text/plain") {
  static constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    const auto pause = std::chrono::milliseconds(200 * attempt);
    try {
      HttpResponse r = c.request(method, target, body, content_type);
      if (r.status == 503 && attempt < kAttempts) {
        std::cerr << "ring-rebalance: " << label << ": " << detail_of(r) << "; retrying" << std::endl;
        std::this_thread::sleep_for(pause);
        continue;
      }
      if (r.status != 200)
        throw Failure(label + ": " + std::string(method) + " " + std::string(target.substr(0, target.find('?'))) +
                      ": HTTP " + std::to_string(r.status) + ": " + detail_of(r));
      return r;
    } catch (const Failure&) {
      throw;
    } catch (const std::exception& e) {
      if (attempt == kAttempts) throw Failure(label + ": " + e.what());
      std::this_thread::sleep_for(pause);
    }
  }
}

struct ProxyState {
  std::string fingerprint, phase, from, to;
  std::string describe() const {
    return phase == "none" ? "ring " + fingerprint + ", no rebalance"
                           : "rebalance " + from + " -> " + to + ", phase " + phase;
  }
};

ProxyState proxy_state(HttpClient& c, const std::string& label) {
  const auto r = call(c, label, "GET", "/admin/migration");
  boost::system::error_code ec;
  const auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) throw Failure(label + ": GET /admin/migration: not JSON: " + r.body.substr(0, 200));
  const auto& o = v.as_object();
  auto str = [&](const char* k) -> std::string {
    const auto* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  return {str("fingerprint"), str("phase"), str("from"), str("to")};
}

// ranges[first, end) as a request body (transfer.hpp's range list).
std::string ranges_body(const std::vector<HashRange>& ranges, std::size_t first, std::size_t end) {
  std::string body;
  for (std::size_t j = first; j < end; ++j) append_range(body, ranges[j]);
  return body;
}

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
  explicit Apply(const ApplyOptions& o) : opt_(o) {}

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

    for (const auto& p : opt_.proxies) proxies_.push_back(std::make_unique<HttpClient>(p, opt_.timeout, opt_.token));

    // Where does each proxy stand?
    std::size_t at_old = 0, dual = 0, read_new = 0, at_new = 0;
    std::vector<ProxyState> states;
    for (auto& c : proxies_) {
      states.push_back(proxy_state(*c, "proxy " + c->server().str()));
      const auto& s = states.back();
      if (s.phase == "none" && s.fingerprint == from_fp_) ++at_old;
      else if (s.phase == "none" && s.fingerprint == to_fp_) ++at_new;
      else if (s.phase == "dual_write" && s.from == from_fp_ && s.to == to_fp_) ++dual;
      else if (s.phase == "read_new" && s.from == from_fp_ && s.to == to_fp_) ++read_new;
    }
    const std::size_t n = proxies_.size();
    const bool consistent = at_old + dual + read_new + at_new == n &&
                            (at_old + dual == n || read_new + at_new == n || dual + read_new == n);
    if (!consistent) {
      std::string why = "the proxies do not agree on a state this rebalance can start or resume from:";
      for (std::size_t i = 0; i < n; ++i) why += "\n  " + opt_.proxies[i].str() + ": " + states[i].describe();
      why += "\n  expected ring " + from_fp_ + " (" + opt_.from_path + "), ring " + to_fp_ + " (" + opt_.to_path +
             "), or a rebalance between them";
      throw Failure(why);
    }

    const bool copied = read_new + at_new > 0;  // a proxy reads from NEW only after the copy finished
    if (at_old == n) {
      // Fresh start. The new owners must hold nothing in the ranges they are about to receive: an
      // earlier aborted rebalance may have left copies there that deletes since have not reached.
      step("clearing the moving ranges on their new owners");
      for (auto& [ids, f] : flows_) send_ranges(f.to, f.to_id, "/admin/drop?what=all", f.ranges);
    } else {
      log(std::string("resuming: ") + std::to_string(at_old) + " proxies on OLD, " + std::to_string(dual) +
          " in dual_write, " + std::to_string(read_new) + " in read_new, " + std::to_string(at_new) + " on NEW");
    }
    if (!copied) {
      proxy_step("begin?from=" + from_fp_, to_yaml_, "dual_write: writes of moving keys go to both owners");
      copy();
    }
    if (at_new < n) {
      proxy_step("read-new?to=" + to_fp_, {}, "read_new: reads of moving keys go to their new owners");
      proxy_step("finish?to=" + to_fp_, {}, "finish: every proxy routes by NEW and saved it as its ring file");
    }
    step("removing the moved ranges from their old owners");
    for (auto& [ids, f] : flows_) {
      send_ranges(f.from, f.from_id, "/admin/drop?what=all", f.ranges);
      send_ranges(f.to, f.to_id, "/admin/drop?what=tombstones", f.ranges);
    }
    summary(plan, copied);
    return 0;
  }

 private:
  static std::string percent(double share) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f%%", share * 100);
    return buf;
  }

  void log(const std::string& line) const { std::cerr << "ring-rebalance: " << line << std::endl; }
  void step(const std::string& what) { log("step: " + what); }

  HttpClient& node(const HostPort& a) {
    auto& c = nodes_[a.str()];
    if (!c) c = std::make_unique<HttpClient>(a, opt_.timeout, opt_.token);
    return *c;
  }

  // Sends `ranges` to `target` on a node, kRangesPerRequest at a time.
  void send_ranges(const HostPort& a, const std::string& id, const std::string& target, const std::vector<HashRange>& ranges) {
    for (std::size_t i = 0; i < ranges.size(); i += kRangesPerRequest) {
      call(node(a), "node " + id + " (" + a.str() + ")", "POST", target,
           ranges_body(ranges, i, std::min(ranges.size(), i + kRangesPerRequest)));
    }
  }

  void proxy_step(const std::string& step_target, const std::string& body, const std::string& what) {
    for (auto& c : proxies_) call(*c, "proxy " + c->server().str(), "POST", "/admin/migration/" + step_target, body, "application/yaml");
    step(what + " (" + std::to_string(proxies_.size()) + " proxies acknowledged)");
  }

  void copy() {
    std::uint64_t total = 0;
    for (auto& [ids, f] : flows_) {
      for (std::size_t i = 0; i < f.ranges.size(); i += kRangesPerRequest) {
        const auto r = call(node(f.from), "node " + f.from_id, "POST", "/admin/count",
                            ranges_body(f.ranges, i, std::min(f.ranges.size(), i + kRangesPerRequest)));
        const auto v = json::parse(r.body);
        f.keys += static_cast<std::uint64_t>(v.as_object().at("keys").as_int64());
      }
      total += f.keys;
    }
    step("copying " + std::to_string(total) + " keys in " + std::to_string(flows_.size()) + " flows");
    Progress progress(Log(), opt_.progress_bar);
    progress.start(total);
    const std::string scan = "/admin/scan?limit=" + std::to_string(opt_.batch_keys) + "&max_bytes=" + std::to_string(opt_.batch_bytes);
    for (auto& [ids, f] : flows_) {
      const std::string from_label = "node " + f.from_id + " (" + f.from.str() + ")";
      const std::string to_label = "node " + f.to_id + " (" + f.to.str() + ")";
      std::size_t first = 0;  // ranges before this one are done
      std::string after;      // resume after this stored key, within ranges[first]
      while (first < f.ranges.size()) {
        const std::size_t end = std::min(f.ranges.size(), first + kRangesPerRequest);
        const auto r = call(node(f.from), from_label, "POST", scan + (after.empty() ? "" : "&after=" + hex_bytes(after)),
                            ranges_body(f.ranges, first, end));
        const std::uint64_t count = std::stoull(r.field("X-KV-Scan-Count").empty() ? "0" : r.field("X-KV-Scan-Count"));
        if (count > 0) {
          const auto w = call(node(f.to), to_label, "POST", "/admin/ingest", r.body, "application/octet-stream");
          f.written += static_cast<std::uint64_t>(json::parse(w.body).as_object().at("written").as_int64());
        }
        progress.add(count, r.body.size());
        if (r.field("X-KV-Scan-Done") == "1") {
          first = end;
          after.clear();
        } else {
          if (!parse_hex_bytes(r.field("X-KV-Scan-Cursor"), after) || after.size() < kStorageKeyPrefix)
            throw Failure(from_label + ": scan answered without a valid cursor");
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
  std::vector<std::unique_ptr<HttpClient>> proxies_;
  std::map<std::string, std::unique_ptr<HttpClient>> nodes_;
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
