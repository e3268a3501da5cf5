#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, then builds and runs the
# whole test suite twice — a release build, and an AddressSanitizer +
# UndefinedBehaviorSanitizer build — followed by a bounded fuzzing run.
#   scripts/test.sh            everything
#   FUZZ_SECONDS=0 scripts/test.sh   skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

jobs=$(nproc)
status=0

echo "== release build: unit and integration tests"
scripts/build.sh release
(cd build && ctest --output-on-failure -j"$jobs") || status=1

echo "== ASan+UBSan build: unit and integration tests"
scripts/build.sh asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs") || status=1

if [ -x scripts/fuzz.sh ] && [ "${FUZZ_SECONDS:-60}" != "0" ]; then
  echo "== fuzzing (${FUZZ_SECONDS:-60}s per target)"
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}" || status=1
fi

if [ $status -eq 0 ]; then echo "embargo: all test stages passed"; else echo "embargo: TEST FAILURES" >&2; fi
exit $status
