#!/usr/bin/env bash
# Replication side by side: kvproxy with replicas: 1 against replicas: 3 on the same three kvnodes (wrk,
# closed loop: req/s, p50/p99, CPU per request of kvproxy and of the nodes), the share of reads answered in
# one round trip (kvproxy's /metrics), and one replica killed and restarted under fixed-rate load (loadgen).
#   bench/replication.sh           5 rounds x 10 s per configuration and workload, a 20 s fault window
#                                  (about 5 minutes): writes bench/REPLICATION.md (and REPLICATION.json)
#   bench/replication.sh --quick   2 rounds of 1 s, a 6 s fault window (under a minute), into
#                                  build/release/bench-quick/
# Everything runs on 127.0.0.1 and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/replication.py "$@"
