#!/bin/sh
# Container entrypoint: turns the image's environment into embargo options,
# then execs embargo (which stays PID 1 and gets the runtime's SIGTERM).
#   EMBARGO_CONFIG  configuration file (default /etc/embargo/embargo.yaml);
#                   used when it exists, an error when set and missing
#   EMBARGO_LISTEN  listen addresses (ADDR:PORT, separated by spaces or
#                   commas); they replace the configured listeners
#   EMBARGO_LOG     decision log destination: "-" (standard output) or a path
# `run` (the default) gets all three; `status` and `check` get the config;
# any other command (`config check FILE`, `version`) is passed on unchanged.
set -eu
set -f  # [::]:3128 is an address, not a glob pattern

bin=/usr/local/bin/embargo
config=${EMBARGO_CONFIG:-/etc/embargo/embargo.yaml}

if [ ! -f "$config" ]; then
  if [ -n "${EMBARGO_CONFIG:-}" ]; then
    echo "embargo-entrypoint: EMBARGO_CONFIG=$EMBARGO_CONFIG: no such file" >&2
    exit 2
  fi
  config=""  # no file at the default path: the built-in configuration
fi

cmd=run
if [ $# -gt 0 ]; then
  case "$1" in
    -*) ;;  # options alone mean `run`
    *) cmd=$1; shift ;;
  esac
fi

case "$cmd" in
  run)
    if [ -n "${EMBARGO_LOG:-}" ]; then
      set -- --log "$EMBARGO_LOG" "$@"
    fi
    # Prepended one by one, so walk the list backwards to keep its order.
    reversed=""
    for addr in $(printf '%s' "${EMBARGO_LISTEN:-}" | tr ',' ' '); do
      reversed="$addr $reversed"
    done
    for addr in $reversed; do
      set -- --listen "$addr" "$@"
    done
    ;;
  status | check) ;;
  *) exec "$bin" "$cmd" "$@" ;;
esac
if [ -n "$config" ]; then
  set -- --config "$config" "$@"
fi
exec "$bin" "$cmd" "$@"
