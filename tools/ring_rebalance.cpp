// ring-rebalance: inspect and change a kvring ring.
//   ring-rebalance show --ring ring.yaml            each node's exact share of the key space
//   ring-rebalance owner --ring ring.yaml KEY...    which node owns each key
// (plan and apply, which move data between nodes, are being built: see the project's issues.)
// Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.

#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "config.hpp"
#include "hash.hpp"
#include "ring.hpp"

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ring-rebalance: inspect and change a kvring ring", "ring-rebalance"};
  app.set_version_flag("--version", std::string("ring-rebalance ") + KVRING_VERSION);
  app.require_subcommand(1);

  std::string ring_path;
  auto* show_cmd = app.add_subcommand("show", "Print each node's exact share of the key space");
  show_cmd->add_option("--ring", ring_path, "ring.yaml")->required();

  std::vector<std::string> keys;
  auto* owner_cmd = app.add_subcommand("owner", "Print the owner of each key: key, node id, address, hash");
  owner_cmd->add_option("--ring", ring_path, "ring.yaml")->required();
  owner_cmd->add_option("keys", keys, "Keys (raw, not percent-encoded)")->required();

  if (auto code = kv::parse_command_line(app, argc, argv)) return *code;

  try {
    if (*show_cmd) return show(ring_path);
    if (*owner_cmd) return owner(ring_path, keys);
  } catch (const kv::ConfigError& e) {
    std::cerr << "ring-rebalance: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ring-rebalance: " << e.what() << std::endl;
    return 1;
  }
  return 2;
}
