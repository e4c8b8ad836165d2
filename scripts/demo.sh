#!/usr/bin/env bash
# Brings up a local kvring cluster from configs/ring.yaml and shows it working:
# builds, starts one kvnode per node of the ring, runs a few requests, then stays in the foreground
# until Ctrl-C and stops every node cleanly (SIGTERM: in-flight requests finish, data is flushed).
#   scripts/demo.sh [RING_YAML]
# Environment (for tests): KVRING_BUILD=DIR uses binaries already built there, without setup or
# build; KVRING_DEMO_DIR=DIR keeps data and logs there instead of build/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
RING=${1:-configs/ring.yaml}

if [ -n "${KVRING_BUILD:-}" ]; then
  BIN=$KVRING_BUILD
else
  scripts/setup.sh
  cmake --preset release > /dev/null
  cmake --build --preset release -j "$(nproc)" --target kvnode ring-rebalance
  BIN=build/release
fi
DATA=${KVRING_DEMO_DIR:-build/demo}/data
LOGS=${KVRING_DEMO_DIR:-build/demo}/logs
mkdir -p "$DATA" "$LOGS"

# Validates the ring and lists its nodes (id and address) in one go.
mapfile -t NODES < <("$BIN/tools/ring-rebalance" show --ring "$RING" | awk 'NR > 1 && NF == 6 {print $1, $2}')

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping ${#pids[@]} node(s)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "demo: stopped; data kept in $DATA"
}
trap 'stop; exit 0' INT TERM   # Ctrl-C is the normal way out
trap stop EXIT                  # on an error, stop the nodes but keep the error's exit code

for line in "${NODES[@]}"; do
  read -r id addr <<<"$line"
  host=${addr%:*}
  port=${addr##*:}
  "$BIN/node/kvnode" --id "$id" --bind "$host" --port "$port" --data-dir "$DATA/$id" > "$LOGS/$id.log" 2>&1 &
  pids+=($!)
done

for line in "${NODES[@]}"; do
  read -r id addr <<<"$line"
  for _ in $(seq 1 100); do
    curl -fs "http://$addr/health" > /dev/null && break
    sleep 0.1
  done
  curl -fs "http://$addr/health" > /dev/null || { echo "demo: $id at $addr did not start; see $LOGS/$id.log" >&2; exit 1; }
  echo "demo: $id is up at $addr"
done

show() { echo "+ $*"; "$@"; echo; }

echo
echo "== Which node owns which key (the ring from $RING):"
"$BIN/tools/ring-rebalance" owner --ring "$RING" alice bob carol dave | awk '{printf "   %-6s -> %s (%s)\n", $1, $2, $3}'
echo
echo "== Each key written to, read from and deleted on its owner:"
while read -r key id addr _; do
  show curl -s -X POST "http://$addr/put?key=$key" -H 'Content-Type: application/json' -d "{\"value\": \"hello $key\"}"
  show curl -s -i "http://$addr/get?key=$key"
done < <("$BIN/tools/ring-rebalance" owner --ring "$RING" alice bob carol)
read -r _ _ addr _ < <("$BIN/tools/ring-rebalance" owner --ring "$RING" carol)
show curl -s -X DELETE "http://$addr/del?key=carol"
show curl -s "http://$addr/get?key=carol"
echo "== Errors are JSON with a detail:"
show curl -s "http://$addr/get"
show curl -s -X POST "http://$addr/put?key=x" -d 'not json'

echo "demo: cluster running (logs in $LOGS). Press Ctrl-C to stop."
wait
