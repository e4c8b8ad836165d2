#!/usr/bin/env bash
# Adding a node under load: ring-rebalance apply under a wrk load, against HAProxy remapping keys.
#   bench/rebalance.sh            300k keys, 20 s per run (a few minutes): writes bench/REBALANCE.md
#   bench/rebalance.sh --quick    5k keys, 3 s per run, into build/release/bench-quick/
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/rebalance.py "$@"
