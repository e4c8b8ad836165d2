#!/usr/bin/env bash
# One RocksDB kvnode straight on (no proxy), filled with KEYS keys (bench:1 .. bench:KEYS, as
# bench/growth.sh does), then, without a restart (the fill's last writes still in the memtable, as in a
# serving node), one warm-up run and RUNS runs of 10 s of wrk's GET-only script over all the keys:
# requests/s, p99 and the node's CPU (user + system) per request, with the block cache's use and the
# node's resident set.
#   bench/node_reads.sh KEYS [kvnode flags...]      e.g. bench/node_reads.sh 1400000 --block-cache-mb 8
# RUNS sets the runs (default 3); PERF=FILE records the second run with `perf record -e cpu-clock -g`
# (a software clock: this machine has no hardware counters), then `perf report -i FILE --no-children`.
# KVRING_BUILD names the build (default build/release). Needs wrk and curl; everything on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${KVRING_BUILD:-build/release}
KEYS=${1:?usage: bench/node_reads.sh KEYS [kvnode flags...]}
shift
WORK=$(mktemp -d)
P=""
cleanup() { [ -n "$P" ] && kill "$P" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$B/node/kvnode" --id n1 --port "$PORT" --data-dir "$WORK/db" "$@" 2> "$WORK/kvnode.log" &
P=$!
for _ in $(seq 1 300); do curl -fs -o /dev/null "127.0.0.1:$PORT/health" && break; sleep 0.1; done
metric() { curl -s "127.0.0.1:$PORT/metrics" | awk -v m="kvnode_rocksdb_$1" '$1 == m {print $2}'; }
export REPORT_LUA=bench/lua/report.lua
wrk_run() { KEYS=$KEYS wrk -t1 -c32 -d"$1"s -s "bench/lua/$2" "http://127.0.0.1:$PORT" 2>&1; }
# The fill: wrk stops as soon as fill.lua has sent its last key.
# wrk itself, not a subshell, gets the SIGINT that ends it early: wrk sleeps out its -d otherwise.
KEYS=$KEYS DONE_FILE=$WORK/done wrk -t1 -c32 -d$((KEYS / 5000 + 30))s -s bench/lua/fill.lua "http://127.0.0.1:$PORT" > "$WORK/fill.out" 2>&1 &
W=$!
while [ ! -e "$WORK/done" ] && kill -0 "$W" 2>/dev/null; do sleep 1; done
kill -INT "$W" 2>/dev/null || true
wait "$W" || true
# Settled: no flush or compaction running or pending.
for _ in $(seq 1 300); do
  busy=$(awk "BEGIN {print $(metric pending_compaction_bytes) + $(metric running_compactions) + $(metric running_flushes)}")
  [ "$busy" = 0 ] && break
  sleep 1
done
echo "$KEYS keys, flags: ${*:-none}; memtable $(($(metric memtable_bytes | cut -d. -f1) >> 20)) MiB, $(metric l0_files) L0 files, table files $(($(metric sst_bytes | cut -d. -f1) >> 20)) MiB"
cpu() { awk '{print $14 + $15}' "/proc/$P/stat"; }
field() { grep -o "\"$1\":[0-9]*" | cut -d: -f2; }
wrk_run 10 get.lua > /dev/null
for r in $(seq 1 "${RUNS:-3}"); do
  if [ -n "${PERF:-}" ] && [ "$r" = 2 ]; then
    perf record -e cpu-clock -F 2000 -g -o "$PERF" -p "$P" -- sleep 8 > /dev/null 2>&1 &
    perf_pid=$!
  fi
  c0=$(cpu); out=$(wrk_run 10 get.lua); c1=$(cpu)
  n=$(echo "$out" | field requests); d=$(echo "$out" | field duration_us); p99=$(echo "$out" | field p99)
  awk -v r="$r" -v n="$n" -v d="$d" -v p99="$p99" -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v cache="$(metric block_cache_bytes)" \
    -v rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$P/status")" \
    'BEGIN {printf "run %d: %.0f req/s, p99 %.2f ms, node CPU %.1f us/request, block cache %.0f MiB, RSS %.0f MiB\n", r, n * 1e6 / d, p99 / 1000, ticks / hz * 1e6 / n, cache / 1048576, rss / 1024}'
  if [ -n "${perf_pid:-}" ]; then wait "$perf_pid" || true; perf_pid=""; fi
done
