#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, then builds and runs the
# whole test suite twice — a release build, and an AddressSanitizer +
# UndefinedBehaviorSanitizer build — then, once, the container image built and
# run with podman (skipped, with the reason, where podman cannot run
# containers), followed by a bounded fuzzing run.
#   scripts/test.sh                       everything
#   FUZZ_SECONDS=0 scripts/test.sh        skip fuzzing
#   EMBARGO_CONTAINER=0 scripts/test.sh   skip the container stage (reported as skipped)
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

# The image is the release build in a container: one run is enough.
echo "== container image: build with podman, run, serve and deny through it"
python3 tests/container/test_container.py 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

fuzz_passed=0 fuzz_failed=0
if [ "${FUZZ_SECONDS:-40}" != "0" ]; then
  echo "== fuzzing (${FUZZ_SECONDS:-40}s per target)"
  if scripts/fuzz.sh "${FUZZ_SECONDS:-40}"; then fuzz_passed=1; else fuzz_failed=1; status=1; fi
fi

# One closing line over every stage: ctest's own summaries, the container
# stage's line, plus fuzzing.
passed=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" |
         awk '{ p += $9 - $4 } END { print p + 0 }')
failed=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" |
         awk '{ f += $4 } END { print f + 0 }')
read -r c_passed c_failed c_skipped < <(
  grep -E '^container: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n 1 |
    awk '{ print $2 + 0, $4 + 0, $6 + 0 } END { if (NR == 0) print 0, 0, 0 }')
passed=$((passed + c_passed)) failed=$((failed + c_failed))
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && [ "$fuzz_failed" -eq 0 ] && failed=1
skipped=""
[ "$c_skipped" -gt 0 ] && skipped=", $c_skipped skipped"
echo "tests: $((passed + fuzz_passed)) passed, $((failed + fuzz_failed)) failed$skipped"
exit "$status"
