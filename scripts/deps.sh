#!/usr/bin/env bash
# Installs the Debian 12 packages Embargo needs. Idempotent and quick when
# everything is present: it only calls apt-get for packages that are missing.
#   scripts/deps.sh build   what building and running needs
#   scripts/deps.sh test    that, plus what the test suite needs
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libc-ares-dev libssl-dev
            libyaml-dev node-llhttp ca-certificates)
test_pkgs=(libcriterion-dev curl dnsmasq-base python3 openssl clang libclang-rt-14-dev
           iproute2 procps chromium libnss3-tools)

case "${1:-build}" in
  build) want=("${build_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "embargo: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "embargo: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
