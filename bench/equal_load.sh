#!/usr/bin/env bash
# Tail latency at equal offered load: kvproxy (io_uring and epoll loops), HAProxy and nginx on the same
# kvnodes, each driven at the same fixed rates by bench/loadgen (open loop, latency from the schedule).
#   bench/equal_load.sh            3 rounds x 10 s per system, point and workload (about 20 minutes):
#                                  writes bench/EQUAL_LOAD.md (and EQUAL_LOAD.json beside it)
#   bench/equal_load.sh --pin      the same, the proxy on CPU 0 and the generator and nodes on CPU 1
#   bench/equal_load.sh --quick    one round of a second each, into build/release/bench-quick/
# Everything runs on 127.0.0.1 and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/equal_load.py "$@"
