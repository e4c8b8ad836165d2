#!/usr/bin/env bash
# The linearizability run at length: the suite's workload and nemeses (tests/integration/lintest.py),
# minutes per nemesis, each history checked by tools/histcheck.py.
#   bench/linearizability.sh                 5 minutes per nemesis (about 35 minutes): writes
#                                            bench/LINEARIZABILITY.md (and .json beside it)
#   bench/linearizability.sh --seconds 60    shorter; --nemesis NAME to run one
#   bench/linearizability.sh --replicas 3    every key on three of four nodes: kill-node, stop-node,
#                                            kill-proxy; writes bench/LINEARIZABILITY_REPLICAS.md
#   bench/linearizability.sh --hosts --replicas 3
#                                            across network namespaces (root): kill, pause, isolation,
#                                            one-way cuts, a proxy in a minority, clock skew; writes
#                                            bench/LINEARIZABILITY_HOSTS.md
#   bench/linearizability.sh --hosts --replicas 3 --nemesis change-replace ...
#                                            ring changes across hosts, one kind per nemesis
#                                            (change-add-remove, change-reweigh, change-replicas-3-5,
#                                            change-replicas-3-1, change-replace; also ring-changes,
#                                            ring-changes-apply-killed, ring-change-kill-node): writes
#                                            bench/LINEARIZABILITY_HOSTS_RING_CHANGES.md
# Everything runs on 127.0.0.1 (or in namespaces it creates) and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/linearizability.py "$@"
