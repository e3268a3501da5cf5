# Writes OUT, the /etc/embargo/embargo.yaml of a Debian host, from IN
# (config/default.yaml): the built-in configuration with its comments, but
# for the listener (loopback), the admin endpoint (loopback, for `embargo
# status`), the user (embargo) and the decision log (/var/log/embargo).
#   cmake -DIN=config/default.yaml -DOUT=embargo.yaml -P deploy/host/embargo-yaml.cmake
# Each change must find its text in IN exactly once: when default.yaml
# changes there, this fails instead of shipping a file that silently differs.

file(READ "${IN}" text)

function(change from to)
  string(FIND "${text}" "${from}" first)
  string(FIND "${text}" "${from}" last REVERSE)
  if(first EQUAL -1 OR NOT first EQUAL last)
    message(FATAL_ERROR "${IN}: expected \"${from}\" once; update deploy/host/embargo-yaml.cmake")
  endif()
  string(REPLACE "${from}" "${to}" text "${text}")
  set(text "${text}" PARENT_SCOPE)
endfunction()

change("# Embargo built-in configuration. This file is compiled into the binary and is
# what `embargo` runs with when no --config is given. A config file given with
# --config may set any of these keys; keys it leaves out keep these values.
"
"# Embargo configuration of this host, read by embargo.service. It holds the
# built-in values (`embargo config show`) but for four, set for a host:
# the listener (loopback until you list the addresses clients use), the
# admin endpoint (loopback, for `embargo status` and `embargo reload`), the
# user and the decision log. Keys left out keep their built-in values.
# Check a change with `embargo config check /etc/embargo/embargo.yaml`, then
# `systemctl reload embargo`; embargo.yaml(5) describes every key.
")
change("listen:
  - 0.0.0.0:3128
"
"listen:
  - 127.0.0.1:3128      # built-in: 0.0.0.0:3128
")
change("user: nobody
"
"user: embargo           # built-in: nobody; the unit starts Embargo as embargo
")
change("log: \"-\"               # \"-\" standard output, \"syslog\", or a file path
"
"log: /var/log/embargo/decisions.log   # built-in: \"-\"; rotated by /etc/logrotate.d/embargo
")
change("# Readiness (/readyz, `embargo status`)."
"# The admin endpoint: /healthz, /readyz, /metrics, /policy and POST /reload,
# which `embargo status` and `embargo reload` use (off in the built-in
# configuration). A bearer token (admin.token_file) is required beyond
# loopback.
admin:
  listen: 127.0.0.1:9090

# Readiness (/readyz, `embargo status`).")
change("# vendors:
#   - builtin: kaspersky
"
"# vendors:
#   - builtin: kaspersky
#   - file: vendors/site.yaml      # a list of this site's, in /etc/embargo/vendors/
")

file(WRITE "${OUT}" "${text}")
