/* Destinations Embargo refuses whatever the vendor lists say: internal
 * addresses (loopback, unspecified, link-local and cloud metadata,
 * multicast, broadcast, this host's own addresses, and IPv6 forms that
 * stand for one of these IPv4 addresses) and Embargo's own listeners. One
 * object serves the proxy and `embargo check`, so both refuse the same. */
#ifndef EMBARGO_PROXY_DESTCHECK_H
#define EMBARGO_PROXY_DESTCHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "config/config.h"

struct netmatch;

struct destcheck {
  struct netmatch *internal;        /* ranges refused by default (owned) */
  struct netmatch *metadata;        /* cloud metadata addresses, always refused (owned) */
  const struct netmatch *allow;     /* config internal.allow (borrowed; may be NULL) */
  struct sockaddr_storage self[CONFIG_MAX_LISTEN + 1]; /* our listeners and admin endpoint */
  size_t nself;
  struct sockaddr_storage *ifaddrs; /* this host's addresses, cached (owned) */
  int nifaddrs;
  uint64_t ifaddrs_at;              /* monotonic ms they were read */
};

/* Builds the default internal table; ALLOW (borrowed, may be NULL) opens
 * ranges of it. Returns 0 or a negative code. */
int destcheck_init(struct destcheck *dc, const struct netmatch *allow);
void destcheck_free(struct destcheck *dc); /* NULL-safe, idempotent */

/* Records one of Embargo's own listening addresses (port included). */
void destcheck_add_self(struct destcheck *dc, const struct sockaddr *addr);

/* True if ADDR is an internal destination: loopback, unspecified,
 * link-local, multicast, broadcast, an address of this host, or an IPv6
 * address that embeds one of these IPv4 addresses (NAT64, SIIT, 6to4),
 * unless internal.allow covers it; or a cloud metadata address (in any
 * family, embedded forms included), unless internal.allow names that exact
 * address as a /32 or /128. NOW_MS (monotonic) decides when the host's
 * interface addresses are read again. */
bool destcheck_is_internal(struct destcheck *dc, const struct sockaddr *addr, uint64_t now_ms);

/* True if ADDR (with port) is one of Embargo's own listening sockets. */
bool destcheck_is_self(struct destcheck *dc, const struct sockaddr *addr, uint64_t now_ms);

#endif
