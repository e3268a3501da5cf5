#!/usr/bin/env bash
# Installs the Debian 12 packages Embargo needs. Idempotent and quick when
# everything is present: it only calls apt-get for packages that are missing.
#   scripts/deps.sh build      what building and running needs
#   scripts/deps.sh runtime    only the shared libraries the built binary links
#                              (what the container image installs)
#   scripts/deps.sh init       runtime, plus iptables (the image's `init` target,
#                              which loads `embargo rules` output in a pod)
#   scripts/deps.sh container  what building and running the image with podman needs
#   scripts/deps.sh package    build, plus what scripts/package.sh needs to build the
#                              Debian package (debhelper, dpkg-dev, scdoc) and check it
#                              (lintian, man-db)
#   scripts/deps.sh test       build, plus what the test suite needs (container included;
#                              Unbound and Squid load `embargo export` output, Squid is
#                              the fleet's parent proxy, HAProxy its load balancer; their
#                              system services are not started by the install)
#   scripts/deps.sh bench      build, plus the origin, peers and load generator of
#                              tests/bench/run.sh; their system services are not
#                              started by the install
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libc-ares-dev libssl-dev
            libyaml-dev libidn2-dev node-llhttp libjansson-dev zlib1g-dev ca-certificates)
# The one list of what `ldd build/embargo` resolves to (libcrypto.so.3 is in
# libssl3); the image's runtime stage installs exactly these, and its build
# fails if ldd finds a library missing.
runtime_pkgs=(libuv1 libc-ares2 libssl3 libyaml-0-2 libjansson4 zlib1g libidn2-0)
init_pkgs=("${runtime_pkgs[@]}" iptables)
# podman runs the image without a Docker daemon (with runc); debootstrap makes
# the base image locally when no registry is reachable (scripts/container.sh).
container_pkgs=(podman runc debootstrap)
# The Debian package: built with debhelper's cmake buildsystem, its man pages
# with scdoc, checked with lintian; `man -l` renders the pages.
package_pkgs=(debhelper dpkg-dev scdoc lintian man-db)
# nodejs (with npm) runs the Kubernetes schema check of deploy/kubernetes/,
# which installs its npm packages into the build tree itself.
test_pkgs=(libcriterion-dev curl dnsmasq-base python3 python3-yaml openssl clang
           libclang-rt-14-dev iproute2 procps chromium libnss3-tools nftables iptables prometheus
           unbound squid haproxy bash-completion nodejs "${container_pkgs[@]}" "${package_pkgs[@]}")
bench_pkgs=(nginx squid tinyproxy haproxy wrk curl openssl python3 procps)

case "${1:-build}" in
  build) want=("${build_pkgs[@]}") ;;
  runtime) want=("${runtime_pkgs[@]}") ;;
  init) want=("${init_pkgs[@]}") ;;
  container) want=("${container_pkgs[@]}") ;;
  package) want=("${build_pkgs[@]}" "${package_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|runtime|init|container|package|test|bench]" >&2; exit 2 ;;
esac
# Debian's nodejs leaves npm to a package of its own; other builds of nodejs
# bring it along.
if [ "${1:-build}" = test ] && ! command -v npm >/dev/null; then
  want+=(npm)
fi

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
# ports, and the tests their own Unbound, Squid and HAProxy; their packages would
# otherwise start system-wide services on public ports (Squid on 3128, nginx
# on 80, Unbound on 53). policy-rc.d is Debian's switch for that (invoke-rc.d
# and deb-systemd-invoke honour it); an existing one is kept.
policy=/usr/sbin/policy-rc.d
if { [ "${1:-build}" = bench ] || [ "${1:-build}" = test ]; } && [ ! -e "$policy" ]; then
  trap '$SUDO rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
fi
$SUDO apt-get update -qq
$SUDO apt-get install -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends "${missing[@]}" >/dev/null
