#!/usr/bin/env bash
# Instruction count per request of kvproxy's data path: kvproxy under callgrind in front of three
# memory-engine kvnodes, the mixed wrk workload (90% GET / 10% PUT, 20 connections) for 15 s.
# callgrind counts instructions, not time: the figure repeats whatever else the machine is doing.
# kvproxy runs on its epoll loop here: under valgrind its io_uring loop did not serve at all (seen
# here: the first health check never got an answer), and the work per request outside the loop is
# the same either way.
#   bench/profile.sh [OUT.callgrind]      then: callgrind_annotate OUT.callgrind | less
set -euo pipefail
cd "$(dirname "$0")/.."
B=${KVRING_BUILD:-build/release}
OUT=${1:-$(mktemp -d)/kvproxy.callgrind}
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(5)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
{ echo "nodes:"; for i in 0 1 2; do echo "  - {id: n$((i + 1)), address: 127.0.0.1:${ports[$i]}}"; done; } > "$WORK/ring.yaml"
for i in 0 1 2; do
  "$B/node/kvnode" --id "n$((i + 1))" --port "${ports[$i]}" --engine memory 2>/dev/null &
  pids+=($!)
done
valgrind --tool=callgrind --callgrind-out-file="$OUT" "$B/proxy/kvproxy" --ring "$WORK/ring.yaml" \
  --listen "127.0.0.1:${ports[3]}" --admin "127.0.0.1:${ports[4]}" --io epoll 2> "$WORK/valgrind.log" &
VPID=$!
for _ in $(seq 1 200); do curl -fs -o /dev/null "127.0.0.1:${ports[3]}/health" && break; sleep 0.1; done
for i in $(seq 1 500); do
  curl -s -o /dev/null -X POST "127.0.0.1:${ports[3]}/put?key=bench:$i" -d '{"value":"benchmark value of about fifty bytes, fixed size."}'
done
N=$(KEYS=500 REPORT_LUA=bench/lua/report.lua wrk -t1 -c20 -d15s -s bench/lua/mixed.lua "http://127.0.0.1:${ports[3]}" \
    | grep -o '"requests":[0-9]*' | cut -d: -f2)
kill -TERM "$VPID"
wait "$VPID" || true
IR=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "kvproxy: $((N + 500)) requests, $IR instructions, $((IR / (N + 500))) instructions per request"
echo "profile: $OUT"
