#!/usr/bin/env bash
# Installs what kvring needs to build, test and demo, from Debian 12 packages only.
# Idempotent: packages already installed are skipped, and with nothing missing it touches nothing.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config ccache python3 curl
  libboost1.81-dev libxxhash-dev libcli11-dev catch2 libyaml-cpp-dev librocksdb-dev libbenchmark-dev liburing-dev
  chromium haproxy nginx-light wrk nghttp2-client python3-locust python3-matplotlib
  clang-14 libclang-rt-14-dev

)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
