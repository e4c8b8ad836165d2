# Sourced by the bench/*.sh scripts, from the repository root: installs what is missing and builds
# the release tree, unless KVRING_BUILD names a tree built already (as ctest does).
if [ -z "${KVRING_BUILD:-}" ]; then
  scripts/setup.sh
  cmake --preset release > /dev/null
  cmake --build --preset release -j "$(nproc)"
fi
