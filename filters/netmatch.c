/* Longest-prefix matcher: one binary trie per address family, nodes in one
 * array named by index. Node 0 is the IPv4 root and node 1 the IPv6 root;
 * since a root is never a child, a child index of 0 means "none". A lookup
 * follows at most 32 or 128 edges and remembers the last node holding a
 * prefix. Vendor lists carry tens of networks, so a plain (not
 * path-compressed) trie is small enough. */
#define _POSIX_C_SOURCE 200809L
#include "filters/netmatch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/err.h"
#include "filters/normalise.h"

enum { ROOT_V4 = 0, ROOT_V6 = 1 };

struct nm_node {
  uint32_t child[2];
  uint32_t entry; /* 1-based index into data[], 0 when no prefix ends here */
};

struct netmatch {
  struct nm_node *nodes;
  size_t nnodes, cap_nodes;
  void **data;
  size_t ndata, cap_data;
};

static unsigned family_bits(int family) {
  return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

static unsigned bit_at(const uint8_t *addr, unsigned i) {
  return (addr[i / 8] >> (7 - i % 8)) & 1u;
}

bool cidr_contains(const struct cidr *outer, const struct cidr *inner) {
  if (outer->family != inner->family || outer->bits > inner->bits)
    return false;
  for (unsigned i = 0; i < outer->bits; i++) {
    if (bit_at(outer->addr, i) != bit_at(inner->addr, i))
      return false;
  }
  return true;
}

/* ---- text ------------------------------------------------------------- */

/* Prefix length: plain decimal without leading zeros, 0..MAX. */
static int parse_bits(const char *s, size_t len, unsigned max, unsigned *out) {
  unsigned v = 0;

  if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
    return EMB_EBADCIDR;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return EMB_EBADCIDR;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > max)
    return EMB_EBADCIDR;
  *out = v;
  return 0;
}

/* IPv4 goes through host_normalise so that only a canonical dotted quad is
 * accepted, exactly as for host names; IPv6 through inet_pton. */
static int parse_addr(const char *s, size_t len, struct cidr *c) {
  char text[INET6_ADDRSTRLEN];
  struct host h;

  memset(c->addr, 0, sizeof(c->addr));
  if (memchr(s, ':', len)) {
    if (len >= sizeof(text))
      return EMB_EBADCIDR;
    memcpy(text, s, len);
    text[len] = '\0';
    c->family = AF_INET6;
    return inet_pton(AF_INET6, text, c->addr) == 1 ? 0 : EMB_EBADCIDR;
  }
  if (len == 0 || s[len - 1] == '.' || host_normalise(s, len, &h) != 0 || h.kind != HOST_IPV4)
    return EMB_EBADCIDR;
  c->family = AF_INET;
  memcpy(c->addr, h.addr, 4);
  return 0;
}

static bool host_bits_zero(const uint8_t *addr, unsigned bits, unsigned max) {
  for (unsigned i = bits; i < max; i++)
    if (bit_at(addr, i))
      return false;
  return true;
}

int cidr_parse(const char *text, size_t len, struct cidr *out) {
  const char *slash = memchr(text, '/', len);
  size_t addr_len = slash ? (size_t)(slash - text) : len;
  struct cidr c;
  unsigned max;

  if (parse_addr(text, addr_len, &c) != 0)
    return EMB_EBADCIDR;
  max = family_bits(c.family);
  c.bits = max;
  if (slash && parse_bits(slash + 1, len - addr_len - 1, max, &c.bits) != 0)
    return EMB_EBADCIDR;
  if (!host_bits_zero(c.addr, c.bits, max))
    return EMB_EBADCIDR;
  *out = c;
  return 0;
}

int cidr_format(const struct cidr *c, char *buf, size_t size) {
  char text[INET6_ADDRSTRLEN];

  if (!inet_ntop(c->family, c->addr, text, sizeof(text)))
    return snprintf(buf, size, "?/%u", c->bits);
  return snprintf(buf, size, "%s/%u", text, c->bits);
}

/* ---- trie ------------------------------------------------------------- */

/* Appends an empty node; returns its index, or 0 on allocation failure
 * (only the roots have index 0 or 1, and they are made first). */
static uint32_t new_node(struct netmatch *m) {
  if (m->nnodes == m->cap_nodes) {
    size_t cap = m->cap_nodes ? m->cap_nodes * 2 : 64;
    struct nm_node *nodes;
    if (cap > UINT32_MAX / 2 || !(nodes = realloc(m->nodes, cap * sizeof(*nodes))))
      return 0;
    m->nodes = nodes;
    m->cap_nodes = cap;
  }
  memset(&m->nodes[m->nnodes], 0, sizeof(m->nodes[0]));
  return (uint32_t)m->nnodes++;
}

struct netmatch *netmatch_new(void) {
  struct netmatch *m = calloc(1, sizeof(*m));

  if (!m)
    return NULL;
  new_node(m);
  new_node(m);
  if (m->nnodes != 2) {
    netmatch_free(m);
    return NULL;
  }
  return m;
}

void netmatch_free(struct netmatch *m) {
  if (!m)
    return;
  free(m->nodes);
  free(m->data);
  free(m);
}

size_t netmatch_count(const struct netmatch *m) { return m->ndata; }

/* Bits of C->addr past the prefix are ignored. A failed allocation may leave
 * empty nodes behind; they hold no prefix and change no lookup. */
int netmatch_add(struct netmatch *m, const struct cidr *c, void *data) {
  unsigned max = family_bits(c->family);
  uint32_t id = c->family == AF_INET ? ROOT_V4 : ROOT_V6;

  if (max == 0 || c->bits > max)
    return EMB_EBADCIDR;
  for (unsigned i = 0; i < c->bits; i++) {
    unsigned b = bit_at(c->addr, i);
    uint32_t next = m->nodes[id].child[b];
    if (next == 0) {
      if ((next = new_node(m)) == 0)
        return -ENOMEM;
      m->nodes[id].child[b] = next;
    }
    id = next;
  }
  if (m->nodes[id].entry != 0)
    return EMB_EDUPLICATE;
  if (m->ndata == m->cap_data) {
    size_t cap = m->cap_data ? m->cap_data * 2 : 16;
    void **arr = realloc(m->data, cap * sizeof(*arr));
    if (!arr)
      return -ENOMEM;
    m->data = arr;
    m->cap_data = cap;
  }
  m->data[m->ndata++] = data;
  m->nodes[id].entry = (uint32_t)m->ndata;
  return 0;
}

void *netmatch_lookup(const struct netmatch *m, int family, const uint8_t *addr,
                      unsigned *bits) {
  unsigned max = family_bits(family);
  uint32_t id = family == AF_INET ? ROOT_V4 : ROOT_V6;
  uint32_t best = 0;
  unsigned best_bits = 0;

  for (unsigned i = 0; max != 0; i++) {
    if (m->nodes[id].entry != 0) {
      best = m->nodes[id].entry;
      best_bits = i;
    }
    if (i == max || (id = m->nodes[id].child[bit_at(addr, i)]) == 0)
      break;
  }
  if (bits)
    *bits = best_bits;
  return best ? m->data[best - 1] : NULL;
}
