#!/usr/bin/env bash
# Configures and builds one flavour of Embargo into build/ (release) or
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer).
#   scripts/build.sh [release|asan] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

flavour="${1:-release}"
shift || true
case "$flavour" in
  release) dir=build; args=(-DCMAKE_BUILD_TYPE=Release -DEMBARGO_SANITIZE=OFF) ;;
  asan) dir=build-asan; args=(-DCMAKE_BUILD_TYPE=Debug -DEMBARGO_SANITIZE=ON) ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
[ "${CI:-}" = "true" ] && args+=(-DEMBARGO_WERROR=ON)

cmake -S . -B "$dir" "${args[@]}" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
