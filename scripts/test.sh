#!/usr/bin/env bash
# The test command: install what is missing, configure, build, and run every test (ctest), first in
# an optimized build, then under AddressSanitizer + UndefinedBehaviorSanitizer, then the multi-threaded
# tests under ThreadSanitizer, then the libFuzzer targets (clang) for a bounded time each.
#   scripts/test.sh              release, asan, tsan and fuzz
#   scripts/test.sh release      one preset (release, debug, asan, tsan or fuzz)
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(release asan tsan fuzz)
jobs=$(nproc)

for preset in "${presets[@]}"; do
  echo "=== ${preset}: configure and build"
  cmake --preset "$preset" > /dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== ${preset}: test"
  ctest --preset "$preset" -j "$jobs"
done
