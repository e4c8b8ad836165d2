#!/usr/bin/env bash
# The study's figure at the systems' own limits: kvproxy, HAProxy and nginx in front of 1, 2 and 3
# kvnodes (RocksDB), driven open-loop by bench/loadgen at rates from light load to past saturation.
#   bench/knee.sh             every rate of 2,000 to 60,000 requests/s, 5 s each, until each system has
#                             fallen behind twice (about 40 minutes): writes bench/KNEE.md (and .json)
#                             and bench/plots/knee_*.png
#   bench/knee.sh --quick     2 nodes, three rates, 1 s each, into build/release/bench-quick/
# Everything runs on 127.0.0.1 and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/knee.py "$@"
