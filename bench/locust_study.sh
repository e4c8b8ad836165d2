#!/usr/bin/env bash
# The original study's workflow (Locust users with think times) with Locust run distributed over worker
# processes, kvproxy and HAProxy in front of 1, 2 and 3 kvnodes (RocksDB).
#   bench/locust_study.sh           worker counts 0 (one process), 2 and 4; 40 to 640 users; 8 s each
#                                   (about 12 minutes): writes bench/LOCUST.md (and .json) and
#                                   bench/plots/locust_workers_*.png
#   bench/locust_study.sh --quick   1 node, kvproxy, 2 workers, 20 users for 3 s, into build/release/bench-quick/
# Everything runs on 127.0.0.1 and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/locust_study.py "$@"
