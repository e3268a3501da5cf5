#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, then builds and runs the
# whole test suite twice — a release build, and an AddressSanitizer +
# UndefinedBehaviorSanitizer build — followed by a bounded fuzzing run.
#   scripts/test.sh                   everything
#   FUZZ_SECONDS=0 scripts/test.sh    skip fuzzing
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1

jobs=$(nproc)
log=$(mktemp "${TMPDIR:-/tmp}/embargo-test.XXXXXX")
trap 'rm -f "$log"' EXIT
status=0

# Runs ctest in build dir $1, appending its output to $log.
run_ctest() {
  (cd "$1" && ctest --output-on-failure -j"$jobs") 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

echo "== release build: unit and integration tests"
scripts/build.sh release -DEMBARGO_TESTS=ON && run_ctest build || status=1

echo "== ASan+UBSan build: unit and integration tests"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
scripts/build.sh asan -DEMBARGO_TESTS=ON && run_ctest build-asan || status=1

fuzz_passed=0 fuzz_failed=0
if [ "${FUZZ_SECONDS:-40}" != "0" ]; then
  echo "== fuzzing (${FUZZ_SECONDS:-40}s per target)"
  if scripts/fuzz.sh "${FUZZ_SECONDS:-40}"; then fuzz_passed=1; else fuzz_failed=1; status=1; fi
fi

# One closing line over every stage: ctest's own summaries, plus fuzzing.
passed=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" |
         awk '{ p += $9 - $4 } END { print p + 0 }')
failed=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" |
         awk '{ f += $4 } END { print f + 0 }')
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && [ "$fuzz_failed" -eq 0 ] && failed=1
echo "tests: $((passed + fuzz_passed)) passed, $((failed + fuzz_failed)) failed"
exit "$status"
