#!/usr/bin/env bash
# Builds Embargo's container image with podman, with no Docker daemon and no
# image registry: the base image the Dockerfile names (debian:bookworm-slim)
# is made locally from a `debootstrap --variant=minbase bookworm` root when
# podman does not have it yet. The root is cached as a tarball in
# build/container/, so only the first run downloads it.
#   scripts/container.sh base                 make the base image if missing
#   scripts/container.sh build [TAG [TARGET]] base, then the image (default embargo:latest;
#                                             TARGET init builds the sidecar's init image)
#   scripts/container.sh podman ARGS...       podman with the options every call here needs
# Environment: EMBARGO_DEBIAN_MIRROR overrides the Debian mirror debootstrap
# uses (default: the host's own apt source for Debian, else debootstrap's).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=debian:bookworm-slim
CACHE_DIR=build/container
BASE_TAR=$CACHE_DIR/bookworm-minbase.tar

# podman here runs without systemd and without crun's cgroup setup: runc with
# cgroupfs works on every machine the project uses.
podman_cmd() {
  podman --runtime runc --cgroup-manager cgroupfs "$@"
}

# Explicit resource limits for build and run containers: podman's defaults
# exceed what this host lets a container set. Open files: this shell's hard
# limit; processes: its hard limit, at most the kernel's pid_max (runc is
# refused anything higher here).
ulimit_args() {
  local nofile nproc pid_max
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
  [ "$nofile" = unlimited ] && nofile=1048576
  { [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; } && nproc=$pid_max
  echo "--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"
}

# The Debian mirror the host's apt uses, so the image is built from the same
# archive as the host; empty lets debootstrap pick its default.
debian_mirror() {
  if [ -n "${EMBARGO_DEBIAN_MIRROR:-}" ]; then
    echo "$EMBARGO_DEBIAN_MIRROR"
    return
  fi
  local m=""
  [ -r /etc/apt/sources.list.d/debian.sources ] &&
    m=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  [ -z "$m" ] && [ -r /etc/apt/sources.list ] &&
    m=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
  echo "$m"
}

make_base_tar() {
  local root=$CACHE_DIR/rootfs.partial mirror
  command -v debootstrap >/dev/null ||
    { echo "embargo: debootstrap is missing (scripts/deps.sh container)" >&2; exit 1; }
  mkdir -p "$CACHE_DIR"
  rm -rf "$root" "$BASE_TAR.partial"
  mirror=$(debian_mirror || true)
  echo "embargo: debootstrap --variant=minbase bookworm ${mirror:-(default mirror)}" >&2
  debootstrap --variant=minbase bookworm "$root" ${mirror:+"$mirror"} >"$CACHE_DIR/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
  # Like the registry's slim image: no package lists or caches in the base.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar --numeric-owner --xattrs -C "$root" -cf "$BASE_TAR.partial" .
  mv "$BASE_TAR.partial" "$BASE_TAR"
  rm -rf "$root"
}

make_base() {
  if podman_cmd image exists "docker.io/library/$BASE_IMAGE"; then
    return 0
  fi
  [ -s "$BASE_TAR" ] || make_base_tar
  # Tagged with the fully qualified name `FROM debian:bookworm-slim` resolves
  # to, so the build finds it locally and never tries a registry.
  podman_cmd import --quiet --change 'CMD ["/bin/bash"]' "$BASE_TAR" "docker.io/library/$BASE_IMAGE" >/dev/null
}

case "${1:-}" in
  base)
    make_base
    ;;
  build)
    tag="${2:-embargo:latest}"
    target=()
    [ -n "${3:-}" ] && target=(--target "$3")
    make_base
    # --format docker keeps HEALTHCHECK (the OCI format has no such field);
    # --network host lets the build's apt-get reach the Debian mirror.
    # shellcheck disable=SC2046
    podman_cmd build --format docker --network host --pull=never $(ulimit_args) \
      "${target[@]}" -t "$tag" -f Dockerfile .
    ;;
  podman)
    shift
    podman_cmd "$@"
    ;;
  ulimits)
    ulimit_args
    ;;
  *)
    echo "usage: $0 base | build [TAG [TARGET]] | podman ARGS... | ulimits" >&2
    exit 2
    ;;
esac
