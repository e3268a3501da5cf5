#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds Embargo (release)
# and runs it on its built-in configuration. Arguments go to embargo, e.g.
#   scripts/run.sh --listen 127.0.0.1:3128
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
scripts/build.sh release -DEMBARGO_TESTS=OFF >&2
exec build/embargo "$@"
