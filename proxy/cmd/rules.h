/* `embargo rules`: the firewall rules an admin loads next to Embargo for
 * its running configuration — the redirect of TCP 80/443 to a transparent
 * listener (NAT REDIRECT or TPROXY), and what a TCP proxy cannot see: QUIC
 * (UDP 80/443) rejected so clients fall back to TCP at once, and DNS and
 * DNS over TLS to anything but the site's resolvers rejected. A family
 * (IPv4, IPv6) with no listener in that mode has its TCP 80/443 rejected,
 * never left to pass unjudged. For a router (prerouting and forward chains)
 * by default, or for a pod (--sidecar: the output chain, Embargo's own
 * traffic exempted by its mark when `mark:` is set, else by its user id,
 * which exempts every process of that user). */
#ifndef EMBARGO_PROXY_RULES_H
#define EMBARGO_PROXY_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

enum rules_format { RULES_NFT, RULES_IPTABLES };

struct rules_opts {
  enum rules_format format;
  enum listen_mode mode;   /* LISTEN_INTERCEPT or LISTEN_TPROXY */
  bool sidecar;            /* a pod's own traffic (output chain), not a router's */
  bool ipv6;               /* iptables: ip6tables-restore input instead */
  long uid;                /* sidecar: Embargo's user id, exempt unless `mark:` is set */
  const char *resolv_conf; /* where the resolvers come from when the config names none */
};

/* Writes the rules for CFG to OUT. Returns 0, or 2 after printing why to
 * stderr (no listener in that mode, ...). */
int rules_print(const struct config *cfg, const struct rules_opts *o, FILE *out);

#endif
