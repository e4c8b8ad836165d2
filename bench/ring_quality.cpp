// Ring quality on exact ownership (arc lengths, not samples), for N equal nodes n1..nN:
//   max/mean   the largest node's share over the mean share
//   add        share moved when node n(N+1) joins, over the ideal 1/(N+1)
// Removing the node that was added last moves exactly what adding it moved.
//   ring_quality [--vnodes V ...] [--from A] [--to B] [--csv]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/ring.hpp"

namespace {

kv::RingConfig make_config(int n, std::uint32_t vnodes) {
  kv::RingConfig c;
  c.vnodes = vnodes;
  for (int i = 1; i <= n; ++i)
    c.nodes.push_back({"n" + std::to_string(i), {"127.0.0.1", static_cast<std::uint16_t>(9000 + i)}, 1, {}});
  return c;
}

double max_over_mean(const kv::Ring& r) {
  const auto own = r.ownership();
  return *std::max_element(own.begin(), own.end()) * static_cast<double>(own.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint32_t> vnodes;
  int from = 2, to = 64;
  bool csv = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--vnodes") && i + 1 < argc) vnodes.push_back(static_cast<std::uint32_t>(std::stoul(argv[++i])));
    else if (!std::strcmp(argv[i], "--from") && i + 1 < argc) from = std::stoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--to") && i + 1 < argc) to = std::stoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--csv")) csv = true;
    else {
      std::fprintf(stderr, "usage: ring_quality [--vnodes V ...] [--from N] [--to N] [--csv]\n");
      return 2;
    }
  }
  if (vnodes.empty()) vnodes = {kv::kDefaultVnodes};
  if (csv) std::printf("vnodes,nodes,max_over_mean,add_moved_over_ideal\n");
  for (auto v : vnodes) {
    double worst = 0, worst_add = 0;
    int worst_n = 0, worst_add_n = 0;
    for (int n = from; n <= to; ++n) {
      const auto r = kv::Ring::build(make_config(n, v));
      const auto next = kv::Ring::build(make_config(n + 1, v));
      const double balance = max_over_mean(*r);
      // Adding n(N+1) moves exactly the arcs it owns in the new ring (points of others do not move).
      const double add = next->ownership()[static_cast<std::size_t>(next->find_node("n" + std::to_string(n + 1)))] * (n + 1);
      if (csv) std::printf("%u,%d,%.5f,%.5f\n", v, n, balance, add);
      if (n >= 3 && balance > worst) worst = balance, worst_n = n;
      if (n >= 3 && add > worst_add) worst_add = add, worst_add_n = n;
    }
    if (!csv)
      std::printf("vnodes %7u: worst max/mean %.4f (at %d nodes), worst moved on add %.4fx ideal (%d -> %d nodes), over %d..%d nodes\n",
                  v, worst, worst_n, worst_add, worst_add_n, worst_add_n + 1, std::max(from, 3), to);
  }
  return 0;
}
