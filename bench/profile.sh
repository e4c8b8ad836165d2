#!/usr/bin/env bash
# Instructions per request under callgrind, of kvproxy's data path (default) or of kvnode (--node):
#   kvproxy: under callgrind in front of three memory-engine kvnodes;
#   kvnode:  one memory-engine kvnode under callgrind, straight on;
# both with the mixed workload (90% GET / 10% PUT over 500 preloaded keys) offered at a fixed rate by
# bench/loadgen: 20 connections x 100 requests/s for 15 s, so every run serves the same 30,000
# requests in the same time, and the work that goes by the clock (the tick, health checks) weighs the
# same in every figure. callgrind counts instructions, not time: the figure repeats whatever else the
# machine is doing.
# kvproxy runs on its epoll loop here: under valgrind its io_uring loop did not serve at all (seen
# here: the first health check never got an answer), and the work per request outside the loop is
# the same either way.
#   bench/profile.sh [--node] [OUT.callgrind]      then: callgrind_annotate OUT.callgrind | less
# PUT_PERCENT sets the share of PUTs (default 10), RATE the requests/s per connection (default 100),
# NODE_ENGINE=rocksdb the engine of --node (default memory), REPLICAS=3 a replicated ring for kvproxy.
# KVRING_BUILD names the build to profile (default build/release), so two builds can be compared.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${KVRING_BUILD:-build/release}
LOADGEN=${LOADGEN:-build/release/bench/loadgen}  # the generator of this checkout, whichever build is profiled
TARGET=kvproxy
if [ "${1:-}" = "--node" ]; then TARGET=kvnode; shift; fi
OUT=${1:-$(mktemp -d)/$TARGET.callgrind}
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(5)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
if [ "$TARGET" = kvproxy ]; then
  { [ -n "${REPLICAS:-}" ] && echo "replicas: $REPLICAS"; echo "nodes:"; for i in 0 1 2; do echo "  - {id: n$((i + 1)), address: 127.0.0.1:${ports[$i]}}"; done; } > "$WORK/ring.yaml"
  for i in 0 1 2; do
    "$B/node/kvnode" --id "n$((i + 1))" --port "${ports[$i]}" --engine memory 2>/dev/null &
    pids+=($!)
  done
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" "$B/proxy/kvproxy" --ring "$WORK/ring.yaml" \
    --listen "127.0.0.1:${ports[3]}" --admin "127.0.0.1:${ports[4]}" --io epoll 2> "$WORK/valgrind.log" &
  PORT=${ports[3]}
else
  # NODE_ENGINE=rocksdb profiles the store on disk (a new directory), memory by default.
  engine=(--engine memory)
  if [ "${NODE_ENGINE:-memory}" = rocksdb ]; then engine=(--data-dir "$WORK/db"); fi
  valgrind --tool=callgrind ${CG_EXTRA:-} --instr-atstart=no --callgrind-out-file="$OUT" "$B/node/kvnode" --id n1 --port "${ports[0]}" \
    "${engine[@]}" 2> "$WORK/valgrind.log" &
  PORT=${ports[0]}
fi
VPID=$!
for _ in $(seq 1 200); do curl -fs -o /dev/null "127.0.0.1:$PORT/health" && break; sleep 0.1; done
for i in $(seq 1 500); do
  curl -s -o /dev/null -X POST "127.0.0.1:$PORT/put?key=bench:$i" -d '{"value":"benchmark value of about fifty bytes, fixed size."}'
done
# Counted from here: start-up (the ring build) and the preload are left out, so the figure is per
# request of the workload alone, whatever the number of requests.
callgrind_control -i on "$VPID" > /dev/null 2>&1
N=$("$LOADGEN" --port "$PORT" --conns 20 --rate "${RATE:-100}" --seconds 15 --warmup 0 --keys 500 --put-percent "${PUT_PERCENT:-10}" \
    | grep -o '"answered_total":[0-9]*' | cut -d: -f2)
kill -TERM "$VPID"
wait "$VPID" || true
IR=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$TARGET: $N requests (and the health checks meanwhile), $IR instructions, $((IR / N)) instructions per request"
echo "profile: $OUT"
