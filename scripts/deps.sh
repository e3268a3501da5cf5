#!/usr/bin/env bash
# Installs the Debian 12 packages Embargo needs. Idempotent and quick when
# everything is present: it only calls apt-get for packages that are missing.
#   scripts/deps.sh build   what building and running needs
#   scripts/deps.sh test    that, plus what the test suite needs
#   scripts/deps.sh bench   that, plus the origin, peers and load generator of
#                           tests/bench/run.sh; their system services are not
#                           started by the install
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libc-ares-dev libssl-dev
            libyaml-dev libidn2-dev node-llhttp libjansson-dev zlib1g-dev ca-certificates)
test_pkgs=(libcriterion-dev curl dnsmasq-base python3 openssl clang libclang-rt-14-dev
           iproute2 procps chromium libnss3-tools nftables iptables)
bench_pkgs=(nginx squid tinyproxy haproxy wrk curl openssl python3 procps)

case "${1:-build}" in
  build) want=("${build_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
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
# The benchmark starts its own nginx, Squid, tinyproxy and HAProxy on loopback
# ports; their packages would otherwise start system-wide services on public
# ports (Squid on 3128, nginx on 80). policy-rc.d is Debian's switch for that
# (invoke-rc.d and deb-systemd-invoke honour it); an existing one is kept.
policy=/usr/sbin/policy-rc.d
if [ "${1:-build}" = bench ] && [ ! -e "$policy" ]; then
  trap '$SUDO rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
fi
$SUDO apt-get update -qq
$SUDO apt-get install -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends "${missing[@]}" >/dev/null
