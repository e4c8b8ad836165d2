#!/usr/bin/env bash
# Anti-entropy: time for a replica to catch up after an outage under load (10 s, 60 s, 5 min), bytes
# moved against the minimum, and the foreground cost (with and without --ring; during a rebuild).
#   bench/anti_entropy.sh           100k keys, outages of 10, 60 and 300 s, 3 rounds x 10 s of wrk
#                                   (about 10 minutes): writes bench/ANTI_ENTROPY.md (and .json)
#   bench/anti_entropy.sh --quick   3k keys, a 3 s outage, 2 rounds of 1 s, into build/release/bench-quick/
# Everything runs on 127.0.0.1 and is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/build.sh
exec /usr/bin/python3 bench/anti_entropy.py "$@"
