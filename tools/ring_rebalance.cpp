// ring-rebalance: inspect and change a kvring ring.
//   ring-rebalance show --ring ring.yaml              each node's exact share of the key space
//   ring-rebalance owner --ring ring.yaml KEY...      which node owns each key
//   ring-rebalance plan --from OLD.yaml --to NEW.yaml [--json] [--ranges]
//   ring-rebalance apply --from OLD.yaml --to NEW.yaml --proxy-admin HOST:PORT [--proxy-admin ...]
// Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.

#include <unistd.h>

#include <boost/json.hpp>

#include <cstdio>
#include <iostream>

#include "tools/apply.hpp"
#include "common/auth.hpp"
#include "common/cli.hpp"
#include "common/config.hpp"
#include "common/hash.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "common/transfer.hpp"

namespace {

namespace json = boost::json;

std::shared_ptr<const kv::Ring> load(const std::string& path) { return kv::Ring::build(kv::load_ring_config(path)); }

int show(const std::string& path) {
  const auto ring = load(path);
  const auto own = ring->ownership();
  double mx = 0;
  std::printf("%-20s %-24s %6s %8s %10s %10s\n", "node", "address", "weight", "points", "ownership", "vs ideal");
  std::uint64_t total_weight = 0;
  for (const auto& n : ring->nodes()) total_weight += n.weight;
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

int owner(const std::string& path, const std::vector<std::string>& keys) {
  const auto ring = load(path);
  for (const auto& k : keys) {
    const auto h = kv::hash_key(k);
    const auto& n = ring->node(ring->owner_of_hash(h));
    std::printf("%s\t%s\t%s\t%016llx\n", k.c_str(), n.id.c_str(), n.address.str().c_str(), static_cast<unsigned long long>(h));
  }
  return 0;
}

std::string weight(std::uint32_t w) { return w ? std::to_string(w) : std::string("-"); }

int plan(const std::string& from_path, const std::string& to_path, bool as_json, bool list_ranges) {
  const auto from_cfg = kv::load_ring_config(from_path), to_cfg = kv::load_ring_config(to_path);
  kv::check_change(from_cfg, from_path, to_cfg, to_path);
  const auto from = kv::Ring::build(from_cfg), to = kv::Ring::build(to_cfg);
  const kv::Plan p = kv::make_plan(from_cfg, *from, to_cfg, *to);

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
                                   {"ideal_after", n.ideal_after}});
    o["nodes"] = std::move(nodes);
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
        ranges.push_back(json::object{{"lo", kv::hex64(m.range.lo)},
                                      {"hi", kv::hex64(m.range.hi)},
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
      std::printf("%s %s %-16s %-16s\n", kv::hex64(m.range.lo).c_str(), kv::hex64(m.range.hi).c_str(),
                  from->node(m.from).id.c_str(), to->node(m.to).id.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ring-rebalance: inspect and change a kvring ring, moving the data", "ring-rebalance"};
  app.set_version_flag("--version", std::string("ring-rebalance ") + KVRING_VERSION);
  app.require_subcommand(1);

  std::string ring_path;
  auto* show_cmd = app.add_subcommand("show", "Print each node's exact share of the key space");
  show_cmd->add_option("--ring", ring_path, "ring.yaml")->required();

  std::vector<std::string> keys;
  auto* owner_cmd = app.add_subcommand("owner", "Print the owner of each key: key, node id, address, hash");
  owner_cmd->add_option("--ring", ring_path, "ring.yaml")->required();
  owner_cmd->add_option("keys", keys, "Keys (raw, not percent-encoded)")->required();

  std::string from_path, to_path;
  bool as_json = false, list_ranges = false;
  auto* plan_cmd = app.add_subcommand("plan", "Print what changing the ring from OLD to NEW moves, against the ideal");
  plan_cmd->add_option("--from", from_path, "OLD ring.yaml (the ring in use)")->required();
  plan_cmd->add_option("--to", to_path, "NEW ring.yaml")->required();
  plan_cmd->add_flag("--json", as_json, "One JSON document on stdout, for scripts");
  plan_cmd->add_flag("--ranges", list_ranges, "Also list every moving range (lo, hi, from, to)");

  kv::tools::ApplyOptions ao;
  std::vector<std::string> proxy_admins;
  unsigned timeout_ms = 30'000;
  std::string progress = "auto";
  auto* apply_cmd = app.add_subcommand("apply", "Change the ring from OLD to NEW on every proxy, moving the data live");
  apply_cmd->add_option("--from", ao.from_path, "OLD ring.yaml (the ring the proxies use)")->required();
  apply_cmd->add_option("--to", ao.to_path, "NEW ring.yaml")->required();
  apply_cmd->add_option("--proxy-admin", proxy_admins, "Admin address HOST:PORT of a kvproxy; list every proxy")->required();
  apply_cmd->add_option("--batch-keys", ao.batch_keys, "Keys per copy batch")->capture_default_str()->check(CLI::Range(1, 100000));
  apply_cmd->add_option("--batch-bytes", ao.batch_bytes, "Bytes per copy batch (at least one key)")
      ->capture_default_str()->check(CLI::Range(1, 32 << 20));
  apply_cmd->add_option("--max-rate", ao.max_rate, "Copy at most this many keys per second (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  apply_cmd->add_option("--timeout-ms", timeout_ms, "Deadline for each request to a node or proxy")
      ->capture_default_str()->check(CLI::Range(100, 3'600'000));
  apply_cmd->add_option("--progress", progress, "bar (redrawn), lines (one a second), or auto (bar on a terminal)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "bar", "lines"}));
  apply_cmd->add_flag("--json", ao.json, "Print a JSON summary on stdout at the end");
  std::string token_file;
  apply_cmd->add_option("--admin-token-file", token_file,
                        "File holding the admin token of the proxies and nodes (sent as a bearer token)");

  if (auto code = kv::parse_command_line(app, argc, argv)) return *code;

  try {
    if (*show_cmd) return show(ring_path);
    if (*owner_cmd) return owner(ring_path, keys);
    if (*plan_cmd) return plan(from_path, to_path, as_json, list_ranges);
    if (*apply_cmd) {
      for (const auto& p : proxy_admins) {
        auto hp = kv::parse_host_port(p);
        if (!hp) {
          std::cerr << "ring-rebalance: --proxy-admin: expected HOST:PORT, got '" << p << "'" << std::endl;
          return 2;
        }
        ao.proxies.push_back(*hp);
      }
      ao.timeout = std::chrono::milliseconds(timeout_ms);
      if (!token_file.empty()) ao.token = kv::load_token_file(token_file);
      ao.progress_bar = progress == "bar" || (progress == "auto" && ::isatty(2));
      return kv::tools::apply(ao);
    }
  } catch (const kv::ConfigError& e) {
    std::cerr << "ring-rebalance: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ring-rebalance: " << e.what() << std::endl;
    return 1;
  }
  return 2;
}
