#!/usr/bin/env bash
# Configures and builds one flavour of Embargo into build/ (release),
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer) or build-tsan/
# (ThreadSanitizer).
#   scripts/build.sh [release|asan|tsan] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

flavour="${1:-release}"
shift || true
case "$flavour" in
  release) dir=build; args=(-DCMAKE_BUILD_TYPE=Release -DEMBARGO_SANITIZE=OFF) ;;
  asan) dir=build-asan; args=(-DCMAKE_BUILD_TYPE=Debug -DEMBARGO_SANITIZE=ON) ;;
  # ThreadSanitizer, for the workers' shared state; run with
  # TSAN_OPTIONS=suppressions=$PWD/tests/tsan.supp (see README).
  tsan) dir=build-tsan; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBARGO_SANITIZE=OFF
                              "-DCMAKE_C_FLAGS=-fsanitize=thread -fno-omit-frame-pointer"
                              -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread) ;;
  *) echo "usage: $0 [release|asan|tsan]" >&2; exit 2 ;;
esac
[ "${CI:-}" = "true" ] && args+=(-DEMBARGO_WERROR=ON)

cmake -S . -B "$dir" "${args[@]}" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
