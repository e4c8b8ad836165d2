#!/usr/bin/env bash
# Changing replica sets live: replicas 1 -> 3, then a fourth node at replicas 3, under a wrk load.
#   bench/replica_change.sh              1,000,000 keys (about 10 minutes): writes bench/REPLICA_CHANGE.md
#   bench/replica_change.sh --keys N     another store size
#   bench/replica_change.sh --quick      20,000 keys, into build/release/bench-quick/
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/replica_change.py "$@"
