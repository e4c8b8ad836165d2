#!/usr/bin/env bash
# Speed as the data grows: kvproxy on three RocksDB kvnodes filled with 10,000, 1 million and 4 million
# keys, wrk's 90% GET / 10% PUT mix right after each fill and once the nodes have compacted it.
#   bench/growth.sh                              3 runs of 10 s per key count: writes bench/GROWTH.md
#   bench/growth.sh --keys 16000000              one key count (or a list)
#   bench/growth.sh --workload get               GETs only: the read path without the PUTs' compactions
#   bench/growth.sh --reference OLD_BUILD_TREE   the build before a change too, taking turns
#   bench/growth.sh --quick                      10,000 and 50,000 keys, into build/release/bench-quick/
# Everything runs on 127.0.0.1 and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/growth.py "$@"
