/* Longest-prefix matcher for IPv4 and IPv6 networks: a binary trie per
 * family, lookups cost O(address bits), not O(number of prefixes). Pure. */
#ifndef EMBARGO_FILTERS_NETMATCH_H
#define EMBARGO_FILTERS_NETMATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netmatch;

struct cidr {
  int family;       /* AF_INET or AF_INET6 */
  uint8_t addr[16]; /* network address, host bits zero */
  unsigned bits;    /* prefix length */
};

/* Parses "a.b.c.d/n", "v6/n", or a bare address (meaning /32 or /128).
 * Rejects non-canonical IPv4 text, host bits set past the prefix, and prefix
 * lengths out of range, with EMB_EBADCIDR. */
int cidr_parse(const char *text, size_t len, struct cidr *out);
/* Formats as "addr/bits" into BUF; returns the length written (snprintf-like). */
int cidr_format(const struct cidr *c, char *buf, size_t size);

/* Whether OUTER holds every address of INNER (same family, OUTER no longer
 * and INNER's first OUTER->bits bits equal to OUTER's). */
bool cidr_contains(const struct cidr *outer, const struct cidr *inner);

struct netmatch *netmatch_new(void);
void netmatch_free(struct netmatch *m); /* NULL-safe; DATA is not freed */

/* Adds C with DATA (borrowed). Returns 0, EMB_EDUPLICATE (first one stays),
 * or -ENOMEM. */
int netmatch_add(struct netmatch *m, const struct cidr *c, void *data);

/* Returns the DATA of the longest prefix containing ADDR (4 bytes for
 * AF_INET, 16 for AF_INET6), or NULL. If BITS is not NULL it receives the
 * matched prefix length. */
void *netmatch_lookup(const struct netmatch *m, int family, const uint8_t *addr,
                      unsigned *bits);

size_t netmatch_count(const struct netmatch *m);

#endif
