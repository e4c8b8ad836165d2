// ring-rebalance: inspect and change a kvring ring.
//   ring-rebalance show --ring ring.yaml              each node's exact share of the key space
//   ring-rebalance owner --ring ring.yaml KEY...      which node owns each key
//   ring-rebalance plan --from OLD.yaml --to NEW.yaml [--json] [--ranges]
//   ring-rebalance apply --from OLD.yaml --to NEW.yaml --proxy-admin HOST:PORT [--proxy-admin ...]
// Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.
// This file is the command line: the flags, their checks, and which command runs.

#include <unistd.h>

#include <iostream>

#include "common/auth.hpp"
#include "common/cli.hpp"
#include "common/config.hpp"
#include "tools/apply.hpp"
#include "tools/inspect.hpp"

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
  bool count = false;
  std::string plan_token_file;
  plan_cmd->add_flag("--count", count,
                     "Also ask the nodes (of OLD) how many keys and bytes each node gains and loses");
  plan_cmd->add_option("--admin-token-file", plan_token_file, "With --count: the nodes' admin token");

  kv::tools::ApplyOptions ao;
  std::vector<std::string> proxy_admins;
  unsigned timeout_ms = 30'000;
  std::string progress = "auto";
  auto* apply_cmd = app.add_subcommand("apply", "Change the ring from OLD to NEW on every proxy, moving the data live");
  apply_cmd->add_option("--from", ao.from_path, "OLD ring.yaml (the ring the proxies use)")->required();
  apply_cmd->add_option("--to", ao.to_path, "NEW ring.yaml")->required();
  apply_cmd->add_option("--proxy-admin", proxy_admins, "Admin address HOST:PORT of a kvproxy; list every proxy")->required();
  apply_cmd->add_option("--batch-keys", ao.copy.batch_keys, "Keys per copy batch")->capture_default_str()->check(CLI::Range(1, 100000));
  apply_cmd->add_option("--batch-bytes", ao.copy.batch_bytes, "Bytes per copy batch (at least one key)")
      ->capture_default_str()->check(CLI::Range(1, 32 << 20));
  apply_cmd->add_option("--max-rate", ao.copy.max_rate, "Copy at most this many keys per second (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  apply_cmd->add_option("--timeout-ms", timeout_ms, "Deadline for each request to a node or proxy")
      ->capture_default_str()->check(CLI::Range(100, 3'600'000));
  unsigned node_wait_ms = 30'000;
  apply_cmd->add_option("--node-wait-ms", node_wait_ms,
                        "With nodes that follow a ring (kvnode --ring): how long to wait for a node of NEW that is down "
                        "when it comes to adopt NEW (then apply stops: run it again once the node is up)")
      ->capture_default_str()->check(CLI::Range(0, 3'600'000));
  apply_cmd->add_option("--progress", progress, "bar (redrawn), lines (one a second), or auto (bar on a terminal)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "bar", "lines"}));
  apply_cmd->add_flag("--json", ao.json, "Print a JSON summary on stdout at the end");
  bool unversioned_copy = false;
  apply_cmd->add_flag("--unsafe-unversioned-copy", unversioned_copy,
                      "Test only: copy as before per-key versions (values only, put-if-absent). It loses writes; "
                      "the linearizability test runs it to show that its checker catches that")
      ->group("");  // not in --help: no operator should want it
  std::string token_file;
  apply_cmd->add_option("--admin-token-file", token_file,
                        "File holding the admin token of the proxies and nodes (sent as a bearer token)");

  if (auto code = kv::parse_command_line(app, argc, argv)) return *code;

  try {
    if (*show_cmd) return kv::tools::print_shares(ring_path);
    if (*owner_cmd) return kv::tools::print_owners(ring_path, keys);
    if (*plan_cmd) {
      std::optional<kv::tools::CountOptions> counting;
      if (count) counting = kv::tools::CountOptions{plan_token_file.empty() ? "" : kv::load_token_file(plan_token_file)};
      return kv::tools::print_plan(from_path, to_path, as_json, list_ranges, counting);
    }
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
      ao.node_wait = std::chrono::milliseconds(node_wait_ms);
      ao.copy.versions = !unversioned_copy;
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
