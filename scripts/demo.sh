#!/usr/bin/env bash
# Brings up a local kvring cluster from configs/ring.yaml and shows it working: builds, starts one
# kvnode per node of the ring and kvproxy in front of them, sends requests through the proxy, then
# stays in the foreground until Ctrl-C and stops everything cleanly (SIGTERM: requests in flight
# finish, data is flushed).
#   scripts/demo.sh [RING_YAML]
# The proxy runs on its own copy of the ring, build/demo/ring.yaml, which a rebalance rewrites (see
# README, "Add a node"); a later run starts from that copy, so added nodes come back too. Naming a
# ring file starts over from it.
# Environment (for tests): KVRING_BUILD=DIR uses binaries already built there, without setup or
# build; KVRING_DEMO_DIR=DIR keeps data and logs there instead of build/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${KVRING_DEMO_DIR:-build/demo}
mkdir -p "$DEMO"
RING=$DEMO/ring.yaml
SRC=${1:-configs/ring.yaml}
if { [ $# -ge 1 ] || [ ! -f "$RING" ]; } && ! [ "$SRC" -ef "$RING" ]; then
  cp "$SRC" "$RING"
  rm -f "$RING.migration" "$RING.prev"
fi

if [ -n "${KVRING_BUILD:-}" ]; then
  BIN=$KVRING_BUILD
else
  scripts/setup.sh
  cmake --preset release > /dev/null
  cmake --build --preset release -j "$(nproc)" --target kvnode kvproxy ring-rebalance
  BIN=build/release
fi
DATA=$DEMO/data
LOGS=$DEMO/logs
mkdir -p "$DATA" "$LOGS"

# Validates the ring and lists its nodes (id and address) in one go.
mapfile -t NODES < <("$BIN/tools/ring-rebalance" show --ring "$RING" | awk 'NR > 1 && NF == 6 {print $1, $2}')

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping ${#pids[@]} process(es)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "demo: stopped; data kept in $DATA"
}
trap 'stop; exit 0' INT TERM   # Ctrl-C is the normal way out
trap stop EXIT                  # on an error, stop everything but keep the error's exit code

not_started() {  # what log: says why, with the end of the process's log, and stops the demo
  echo "demo: $1 did not start; see $2:" >&2
  tail -n 5 "$2" | sed 's/^/  /' >&2
  exit 1
}

wait_healthy() {  # name address log
  for _ in $(seq 1 100); do
    curl -fs "http://$2/health" > /dev/null && { echo "demo: $1 is up at $2"; return 0; }
    sleep 0.1
  done
  not_started "$1 at $2" "$3"
}

listening() {  # pid log: the address the process's log says it listens on, once it does (up to 30 s)
  for _ in $(seq 1 300); do
    grep -o 'listening on [^,]*' "$2" | head -1 | awk '{print $3}' | grep . && return 0
    kill -0 "$1" 2>/dev/null || return 0  # it exited: nothing to wait for
    sleep 0.1
  done
}

declare -A NODE_PID
start_node() {  # id address
  "$BIN/node/kvnode" --id "$1" --bind "${2%:*}" --port "${2##*:}" --data-dir "$DATA/$1" >> "$LOGS/$1.log" 2>&1 &
  pids+=($!)
  NODE_PID[$1]=$!
}
for line in "${NODES[@]}"; do
  read -r id addr <<<"$line"
  start_node "$id" "$addr"
done
for line in "${NODES[@]}"; do
  read -r id addr <<<"$line"
  wait_healthy "$id" "$addr" "$LOGS/$id.log"
done

# The proxy, with checks every 500 ms so the demo shows a node going down and up quickly.
"$BIN/proxy/kvproxy" --ring "$RING" --check-interval-ms 500 --check-fall 2 --check-rise 2 > "$LOGS/kvproxy.log" 2>&1 &
pids+=($!)
LISTEN=$(listening $! "$LOGS/kvproxy.log")
[ -n "$LISTEN" ] || not_started kvproxy "$LOGS/kvproxy.log"
ADMIN=$(grep -o 'admin on [^ ]*' "$LOGS/kvproxy.log" | awk '{print $3}')
wait_healthy kvproxy "$LISTEN" "$LOGS/kvproxy.log"
P="http://$LISTEN"

show() { echo "+ $*"; "$@"; echo; }

echo
echo "== Through the proxy at $LISTEN: put, get, delete; X-KV-Node names the node that answered"
show curl -s -X POST "$P/put?key=alice" -H 'Content-Type: application/json' -d '{"value": "hello alice"}'
show curl -s -i "$P/get?key=alice"
show curl -s -X DELETE "$P/del?key=alice"
show curl -s "$P/get?key=alice"
show curl -s "$P/get"

echo "== 30 keys spread over the nodes (each key always on its owner):"
for i in $(seq 1 30); do
  curl -s -o /dev/null -D - -X POST "$P/put?key=user:$i" -d "{\"value\": \"profile $i\"}" | tr -d '\r' | awk '/^X-KV-Node/ {print $2}'
done | sort | uniq -c | awk '{printf "   %s keys on %s\n", $1, $2}'
echo

read -r victim victim_addr <<<"${NODES[0]}"
probe=$("$BIN/tools/ring-rebalance" owner --ring "$RING" $(seq -f 'user:%g' 1 30) | awk -v n="$victim" '$2 == n {print $1; exit}')
echo "== Stopping $victim: its keys answer 503 (never another node), the others keep answering"
{ kill -9 "${NODE_PID[$victim]}"; wait "${NODE_PID[$victim]}"; } 2>/dev/null || true  # reap it quietly
show curl -s "$P/get?key=$probe"
other=$("$BIN/tools/ring-rebalance" owner --ring "$RING" $(seq -f 'user:%g' 1 30) | awk -v n="$victim" '$2 != n {print $1; exit}')
show curl -s "$P/get?key=$other"
echo "== Restarting $victim: served again once two checks pass, data intact"
start_node "$victim" "$victim_addr"
for _ in $(seq 1 50); do
  curl -s "http://$ADMIN/stats.json" | grep -q "\"id\":\"$victim\",[^}]*\"state\":\"UP\"" && break
  sleep 0.2
done
show curl -s "$P/get?key=$probe"

if [ "${#NODES[@]}" -ge 3 ]; then
  # A second kvproxy on the same nodes, routing by a copy of the ring with replicas: 3.
  { echo "replicas: 3"; grep -v '^replicas:' "$RING"; } > "$DEMO/ring-replicas.yaml"
  "$BIN/proxy/kvproxy" --ring "$DEMO/ring-replicas.yaml" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    --check-interval-ms 500 --check-fall 2 --check-rise 2 > "$LOGS/kvproxy-replicas.log" 2>&1 &
  rpid=$!
  pids+=($rpid)
  R=$(listening $rpid "$LOGS/kvproxy-replicas.log")
  [ -n "$R" ] || not_started "the replicated kvproxy" "$LOGS/kvproxy-replicas.log"
  wait_healthy "kvproxy (replicas: 3)" "$R" "$LOGS/kvproxy-replicas.log"
  echo "== replicas: 3 through a second kvproxy at $R: every key on three nodes, each request decided by a majority"
  show curl -s -i -X POST "http://$R/put?key=carol" -d '{"value": "kept on three nodes"}'
  echo "== Stopping $victim again: the key still answers, and takes writes (X-KV-Replicas: who holds it)"
  { kill -9 "${NODE_PID[$victim]}"; wait "${NODE_PID[$victim]}"; } 2>/dev/null || true
  show curl -s -i "http://$R/get?key=carol"
  show curl -s -i -X POST "http://$R/put?key=carol" -d '{"value": "written with a node down"}'
  show curl -s "http://$R/get?key=carol"
  echo "== Restarting $victim; the replicated kvproxy stops here (the rest of the demo, and a rebalance, use one owner per key)"
  start_node "$victim" "$victim_addr"
  wait_healthy "$victim" "$victim_addr" "$LOGS/$victim.log"
  kill -TERM "$rpid"
  wait "$rpid" 2>/dev/null || true
fi

echo "demo: cluster running. Proxy $P, stats page http://$ADMIN/stats, ring $RING, logs in $LOGS."
echo "demo: press Ctrl-C to stop."
wait
