#!/usr/bin/env bash
# One RocksDB kvnode straight on (no proxy), filled with KEYS keys (bench:1 .. bench:KEYS, as
# bench/growth.sh does), then, without a restart (the fill's last writes still in the memtable, as in a
# serving node), RUNS runs (default 3) of 10 s of wrk's GET-only script over all the keys once the node
# has settled: requests/s, p99 and the node's CPU (user + system) per request, with the block cache's
# use and the node's resident set. It is bench/growth.py --direct --workload get.
#   bench/node_reads.sh KEYS [kvnode flags...]      e.g. bench/node_reads.sh 1400000 --block-cache-mb 8
# PERF=FILE records the second run with `perf record -e cpu-clock -g` (a software clock: this machine
# has no hardware counters), then `perf report -i FILE --no-children`.
# KVRING_BUILD names the build (default build/release, built first when unset).
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:?usage: bench/node_reads.sh KEYS [kvnode flags...]}
shift
. bench/build.sh
exec /usr/bin/python3 bench/growth.py --direct --workload get --keys "$KEYS" --rounds "${RUNS:-3}" \
  --build "${KVRING_BUILD:-build/release}" --node-flags "$*" ${PERF:+--perf "$PERF"}
