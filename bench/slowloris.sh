#!/usr/bin/env bash
# Normal clients among idle and slowloris connections: kvproxy and HAProxy, p99 quiet and attacked.
#   bench/slowloris.sh            10 s per run (about a minute): writes bench/SLOWLORIS.md
#   bench/slowloris.sh --quick    3 s per run, into build/release/bench-quick/
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/slowloris.py "$@"
