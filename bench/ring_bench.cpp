// Ring micro-benchmarks: lookup cost (hash given, and key hashed too) and build cost, by node count.
// Keys are random, so lookups miss cache the way a proxy's traffic does.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "common/hash.hpp"
#include "common/ring.hpp"

namespace {

kv::RingConfig make_config(int n) {
  kv::RingConfig c;
  for (int i = 1; i <= n; ++i)
    c.nodes.push_back({"n" + std::to_string(i), {"127.0.0.1", static_cast<std::uint16_t>(9000 + i)}, 1, {}});
  return c;
}

void BM_LookupHash(benchmark::State& state) {
  const auto ring = kv::Ring::build(make_config(static_cast<int>(state.range(0))));
  std::mt19937_64 rng(1);
  std::vector<std::uint64_t> hashes(1 << 16);
  for (auto& h : hashes) h = rng();
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring->owner_of_hash(hashes[i++ & (hashes.size() - 1)]));
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["points"] = static_cast<double>(ring->point_count());
}
BENCHMARK(BM_LookupHash)->Arg(3)->Arg(16)->Arg(64);

void BM_LookupKey(benchmark::State& state) {
  const auto ring = kv::Ring::build(make_config(static_cast<int>(state.range(0))));
  std::vector<std::string> keys;
  for (int i = 0; i < (1 << 16); ++i) keys.push_back("user:" + std::to_string(i * 7919));
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring->owner_of_key(keys[i++ & (keys.size() - 1)]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LookupKey)->Arg(3)->Arg(64);

void BM_Build(benchmark::State& state) {
  const auto config = make_config(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(kv::Ring::build(config));
}
BENCHMARK(BM_Build)->Arg(3)->Arg(64)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
