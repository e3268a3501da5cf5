#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, then builds and runs the
# whole test suite twice — a release build, and an AddressSanitizer +
# UndefinedBehaviorSanitizer build — then, once, the container image built and
# run with podman (skipped, with the reason, where podman cannot run
# containers), followed by a bounded fuzzing run.
#   scripts/test.sh                       everything
#   FUZZ_SECONDS=0 scripts/test.sh        no fuzzing (reported as skipped)
#   EMBARGO_CONTAINER=0 scripts/test.sh   no container stage (reported as skipped)
# It ends with every program and stage that skipped cases, and why, those
# that failed, and the line `tests: N passed, M failed, K skipped` counted
# in cases (scripts/tally.py).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1

jobs=$(nproc)
results=$(mktemp -d "${TMPDIR:-/tmp}/embargo-test.XXXXXX")
trap 'rm -rf "$results"' EXIT
status=0

# Runs ctest in build dir $1, its JUnit report (every program's output in
# it, whole) to $results/$2.xml.
run_ctest() {
  (cd "$1" && ctest --output-on-failure -j"$jobs" --output-junit "$results/$2.xml" \
     --test-output-size-passed 8388608 --test-output-size-failed 8388608 \
     --test-output-truncation middle)
}

# Builds flavour $1 into dir $2 and runs its tests as stage $3.
stage_ctest() {
  if scripts/build.sh "$1" -DEMBARGO_TESTS=ON; then
    run_ctest "$2" "$3" || status=1
    [ -s "$results/$3.xml" ] || { echo "ctest wrote no report" >"$results/$3.failed"; status=1; }
  else
    echo "the $1 build failed" >"$results/$3.failed"
    status=1
  fi
}

echo "== release build: unit and integration tests"
stage_ctest release build release

echo "== ASan+UBSan build: unit and integration tests"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage_ctest asan build-asan asan

# The image is the release build in a container: one run is enough.
echo "== container image: build with podman, run, serve and deny through it"
python3 tests/container/test_container.py 2>&1 | tee "$results/container.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

fuzz_seconds=${FUZZ_SECONDS:-40}
if [ "$fuzz_seconds" != "0" ]; then
  echo "== fuzzing (${fuzz_seconds}s per target)"
  scripts/fuzz.sh "$fuzz_seconds" 2>&1 | tee "$results/fuzz.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  targets=$(find tests/fuzz -maxdepth 1 -name 'fuzz_*.c' | wc -l)
  echo "== fuzzing skipped (FUZZ_SECONDS=0)"
  { echo "SKIP fuzz: $targets targets: FUZZ_SECONDS=0"
    echo "fuzz: 0 passed, 0 failed, $targets skipped"; } | tee "$results/fuzz.log"
fi

python3 scripts/tally.py "$results" || status=1
exit "$status"
