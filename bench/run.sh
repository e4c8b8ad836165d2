#!/usr/bin/env bash
# Benchmarks kvproxy side by side with HAProxy and nginx on the same kvnodes, kvnode against nginx's
# fixed answer, the ring's quality, and the original Locust study; writes RESULTS.md and plots/.
#   bench/run.sh            the full run (about 20 minutes): writes bench/RESULTS.md, bench/plots/*.png
#   bench/run.sh --quick    a few seconds per system, written to build/bench-quick/ (keeps the scripts alive)
# Everything runs on 127.0.0.1 and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
# Debian's python3, where matplotlib and locust are installed.
exec /usr/bin/python3 bench/run.py "$@"
