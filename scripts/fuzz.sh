#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each one for
# SECONDS (default 60), single process, on a temporary copy of its committed
# seed corpus (tests/fuzz/corpus/<name>/; never written to). Exits non-zero if
# any target crashes, leaks or times out; crash inputs are kept in the
# printed artifact directory. Ends with a FAIL line per failed target and
# `fuzz: N passed, M failed, 0 skipped`, counted in targets.
#
# usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
work=$(mktemp -d "${TMPDIR:-/tmp}/embargo-fuzz.XXXXXX")

CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
  -DEMBARGO_FUZZ=ON -DEMBARGO_TESTS=ON >/dev/null
fuzzers=$(cd "$root/tests/fuzz" && ls fuzz_*.c 2>/dev/null | sed 's/\.c$//')
[ -n "$fuzzers" ] || { echo "no fuzz targets in tests/fuzz" >&2; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $fuzzers

status=0 passed=0 failed=0
for f in $fuzzers; do
  name=${f#fuzz_}
  corpus=$work/$name/corpus
  artifacts=$work/$name/artifacts
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$root/tests/fuzz/corpus/$name" ]; then
    cp -R "$root/tests/fuzz/corpus/$name/." "$corpus/"
  fi
  echo "== $f: ${seconds}s, corpus copy in $corpus"
  if "$build/tests/$f" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" \
      >"$work/$name/log" 2>&1; then
    grep -E "^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)" "$work/$name/log" || true
    passed=$((passed + 1))
  else
    status=1 failed=$((failed + 1))
    tail -n 40 "$work/$name/log"
    echo "!! $f failed; artifacts in $artifacts" >&2
    echo "FAIL fuzz: $f: artifacts in $artifacts"
  fi
done
echo "fuzz: $passed passed, $failed failed, 0 skipped"

if [ "$status" -eq 0 ]; then
  rm -rf "$work"
fi
exit "$status"
