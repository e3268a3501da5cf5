#!/usr/bin/env bash
# Benchmarks Embargo against Squid, tinyproxy and HAProxy on loopback and
# prints one table of figures, same-run ratios and the performance targets.
#   tests/bench/run.sh [--quick] [--rounds N] [--duration S] [--tunnels N] [--parallel N]
#                        [--only idle|load|tls|ka|scale|page] [--targets embargo,haproxy,...]
#                        [--scale-tunnels N,..] [--scale-clients N,..] [--scale-patterns N,..]
#                        [--burst N] [--workers N] [--keep] [--json FILE] [--log-cost]
# Installs what it needs (scripts/deps.sh bench), builds the release binary
# (scripts/build.sh release), then runs tests/bench/proxybench.py. Exit status
# 0 unless something could not run; the figures themselves never fail it.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/deps.sh bench
# The benchmark needs only the binary: without Criterion (scripts/deps.sh
# test) the unit tests are left out rather than failing the build.
tests=()
pkg-config --exists criterion 2>/dev/null || tests=(-DEMBARGO_TESTS=OFF)
scripts/build.sh release "${tests[@]}" >/dev/null
export PYTHONDONTWRITEBYTECODE=1
exec python3 -u tests/bench/proxybench.py --binary build/embargo "$@"
