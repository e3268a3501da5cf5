/* The resolver's cache: a chained hash table keyed by SipHash of the
 * normalised name, a doubly-linked LRU list of answers, and pending entries
 * that carry the waiters of a running query. Answers are stored packed
 * (addresses without ports, names at their length) in one allocation. */
#include "proxy/base/dnscache.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 253
#define MIN_BUCKETS 16

/* One name: a pending query (in the table, not in the LRU) or an answer
 * (in both). DATA holds the name, NUL-terminated, then NADDRS addresses as
 * a family byte (4 or 6) and 4 or 16 address bytes, then NCNAMES
 * NUL-terminated names. */
struct entry {
  struct entry *hnext;              /* hash chain */
  struct entry *prev, *next;        /* LRU list, most recent first (answers) */
  struct dnscache_waitlist waiters; /* pending only */
  uint64_t hash;
  uint64_t expires_ms;              /* answers: first instant it is stale */
  size_t bytes;                     /* this allocation */
  enum dns_status status;
  bool pending;
  uint8_t naddrs, ncnames;
  uint16_t namelen;
  char data[];
};

struct dnscache {
  struct dnscache_limits limits;
  struct entry **buckets;
  size_t mask;                /* buckets - 1 (a power of two) */
  struct entry *lru_head, *lru_tail;
  struct dnscache_stats stats;
};

/* A lookup key: the name lowercased, one trailing dot removed. */
struct key {
  char name[NAME_MAX_LEN + 1];
  size_t len;
  uint64_t hash;
};

/* ---- SipHash-1-3 (Aumasson & Bernstein), keyed by limits.seed ----------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4]) {
  v[0] += v[1]; v[1] = ROTL(v[1], 13); v[1] ^= v[0]; v[0] = ROTL(v[0], 32);
  v[2] += v[3]; v[3] = ROTL(v[3], 16); v[3] ^= v[2];
  v[0] += v[3]; v[3] = ROTL(v[3], 21); v[3] ^= v[0];
  v[2] += v[1]; v[1] = ROTL(v[1], 17); v[1] ^= v[2]; v[2] = ROTL(v[2], 32);
}

static uint64_t load_le64(const unsigned char *p, size_t n) {
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++)
    w |= (uint64_t)p[i] << (8 * i);
  return w;
}

static uint64_t siphash13(const uint64_t seed[2], const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t v[4] = {seed[0] ^ UINT64_C(0x736f6d6570736575), seed[1] ^ UINT64_C(0x646f72616e646f6d),
                   seed[0] ^ UINT64_C(0x6c7967656e657261), seed[1] ^ UINT64_C(0x7465646279746573)};
  size_t whole = len & ~(size_t)7;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = load_le64(p + i, 8);
    v[3] ^= m;
    sip_round(v);
    v[0] ^= m;
  }
  uint64_t last = load_le64(p + whole, len - whole) | ((uint64_t)len << 56);
  v[3] ^= last;
  sip_round(v);
  v[0] ^= last;
  v[2] ^= 0xff;
  sip_round(v);
  sip_round(v);
  sip_round(v);
  return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- keys, table, LRU ---------------------------------------------------- */

static int key_make(const struct dnscache *c, const char *name, struct key *k) {
  size_t len = strlen(name);
  if (len > 0 && name[len - 1] == '.')
    len--;
  if (len == 0 || len > NAME_MAX_LEN)
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    char ch = name[i];
    k->name[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
  }
  k->name[len] = '\0';
  k->len = len;
  k->hash = siphash13(c->limits.seed, k->name, len);
  return 0;
}

static struct entry **bucket_of(const struct dnscache *c, uint64_t hash) {
  return &c->buckets[hash & c->mask];
}

static struct entry *table_find(const struct dnscache *c, const struct key *k) {
  for (struct entry *e = *bucket_of(c, k->hash); e != NULL; e = e->hnext) {
    if (e->hash == k->hash && e->namelen == k->len && memcmp(e->data, k->name, k->len) == 0)
      return e;
  }
  return NULL;
}

static void table_insert(struct dnscache *c, struct entry *e) {
  struct entry **b = bucket_of(c, e->hash);
  e->hnext = *b;
  *b = e;
}

static void table_remove(struct dnscache *c, const struct entry *e) {
  struct entry **pp = bucket_of(c, e->hash);
  while (*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
}

static void lru_unlink(struct dnscache *c, struct entry *e) {
  if (e->prev != NULL)
    e->prev->next = e->next;
  else
    c->lru_head = e->next;
  if (e->next != NULL)
    e->next->prev = e->prev;
  else
    c->lru_tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push_front(struct dnscache *c, struct entry *e) {
  e->prev = NULL;
  e->next = c->lru_head;
  if (c->lru_head != NULL)
    c->lru_head->prev = e;
  else
    c->lru_tail = e;
  c->lru_head = e;
}

/* ---- waiters --------------------------------------------------------------- */

static void waitlist_append(struct dnscache_waitlist *l, struct dnscache_waiter *w) {
  w->list = l;
  w->next = NULL;
  w->prev = l->tail;
  if (l->tail != NULL)
    l->tail->next = w;
  else
    l->head = w;
  l->tail = w;
}

void dnscache_detach(struct dnscache_waiter *w) {
  if (w == NULL || w->list == NULL)
    return;
  struct dnscache_waitlist *l = w->list;
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    l->head = w->next;
  if (w->next != NULL)
    w->next->prev = w->prev;
  else
    l->tail = w->prev;
  w->prev = w->next = NULL;
  w->list = NULL;
}

struct dnscache_waiter *dnscache_waitlist_pop(struct dnscache_waitlist *l) {
  struct dnscache_waiter *w = l->head;
  dnscache_detach(w);
  return w;
}

/* Moves every waiter of FROM to TO, which is re-pointed as their list. */
static void waitlist_move(struct dnscache_waitlist *from, struct dnscache_waitlist *to) {
  *to = *from;
  for (struct dnscache_waiter *w = to->head; w != NULL; w = w->next)
    w->list = to;
  from->head = from->tail = NULL;
}

/* ---- entries ----------------------------------------------------------------- */

static struct entry *entry_alloc(const struct key *k, size_t payload) {
  size_t bytes = sizeof(struct entry) + k->len + 1 + payload;
  struct entry *e = calloc(1, bytes);
  if (e == NULL)
    return NULL;
  e->hash = k->hash;
  e->bytes = bytes;
  e->namelen = (uint16_t)k->len;
  memcpy(e->data, k->name, k->len + 1);
  return e;
}

/* Unlinks E from the table (and the LRU for an answer) and frees it. */
static void entry_drop(struct dnscache *c, struct entry *e) {
  table_remove(c, e);
  if (e->pending) {
    struct dnscache_waitlist gone;
    waitlist_move(&e->waiters, &gone);
    while (dnscache_waitlist_pop(&gone) != NULL)
      ;
    c->stats.pending--;
  } else {
    lru_unlink(c, e);
    c->stats.entries--;
  }
  c->stats.bytes -= e->bytes;
  free(e);
}

static size_t addr_size(const struct sockaddr_storage *a) {
  return a->ss_family == AF_INET6 ? 17 : a->ss_family == AF_INET ? 5 : 0;
}

/* Bytes the addresses and CNAMEs of R take packed. */
static size_t payload_size(const struct dns_result *r) {
  size_t n = 0;
  for (size_t i = 0; r != NULL && i < r->naddrs && i < DNS_MAX_ADDRS; i++)
    n += addr_size(&r->addrs[i]);
  for (size_t i = 0; r != NULL && i < r->ncnames && i < DNS_MAX_CNAMES; i++)
    n += strnlen(r->cnames[i], sizeof(r->cnames[i]) - 1) + 1;
  return n;
}

static void pack(struct entry *e, const struct dns_result *r) {
  char *p = e->data + e->namelen + 1;
  for (size_t i = 0; r != NULL && i < r->naddrs && i < DNS_MAX_ADDRS; i++) {
    const struct sockaddr_storage *a = &r->addrs[i];
    if (addr_size(a) == 0)
      continue;
    bool v6 = a->ss_family == AF_INET6;
    *p++ = v6 ? 6 : 4;
    memcpy(p, v6 ? (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr
                 : (const void *)&((const struct sockaddr_in *)a)->sin_addr, v6 ? 16 : 4);
    p += v6 ? 16 : 4;
    e->naddrs++;
  }
  for (size_t i = 0; r != NULL && i < r->ncnames && i < DNS_MAX_CNAMES; i++) {
    size_t len = strnlen(r->cnames[i], sizeof(r->cnames[i]) - 1);
    memcpy(p, r->cnames[i], len);
    p[len] = '\0';
    p += len + 1;
    e->ncnames++;
  }
}

static void unpack(const struct entry *e, uint16_t port, uint64_t now_ms, struct dns_result *out) {
  const char *p = e->data + e->namelen + 1;
  out->naddrs = e->naddrs;
  for (size_t i = 0; i < e->naddrs; i++) {
    struct sockaddr_storage *a = &out->addrs[i];
    bool v6 = *p++ == 6;
    memset(a, 0, v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    a->ss_family = v6 ? AF_INET6 : AF_INET;
    memcpy(v6 ? (void *)&((struct sockaddr_in6 *)a)->sin6_addr
              : (void *)&((struct sockaddr_in *)a)->sin_addr, p, v6 ? 16 : 4);
    p += v6 ? 16 : 4;
  }
  dnscache_set_port(out, port);
  out->ncnames = e->ncnames;
  for (size_t i = 0; i < e->ncnames; i++) {
    size_t len = strlen(p);
    memcpy(out->cnames[i], p, len + 1);
    p += len + 1;
  }
  out->ttl = (uint32_t)((e->expires_ms - now_ms + 999) / 1000);
}

/* How long an answer of STATUS with R is kept, in ms; 0: not kept. */
static uint64_t keep_for(const struct dnscache_limits *l, enum dns_status *status,
                         const struct dns_result *r) {
  if (*status == DNS_OK && (r == NULL || r->naddrs == 0))
    *status = DNS_NODATA;
  if (*status == DNS_NXDOMAIN || *status == DNS_NODATA)
    return l->negative_ttl_ms;
  if (*status != DNS_OK)
    return 0;
  uint64_t ttl = (uint64_t)r->ttl * 1000;
  return ttl < l->min_ttl_ms ? l->min_ttl_ms : ttl > l->max_ttl_ms ? l->max_ttl_ms : ttl;
}

/* Drops least-recently-used answers until the bounds hold. */
static void evict(struct dnscache *c) {
  while (c->lru_tail != NULL && (c->stats.entries > c->limits.max_entries ||
                                 c->stats.bytes > c->limits.max_bytes)) {
    entry_drop(c, c->lru_tail);
    c->stats.evictions++;
  }
}

/* Stores an answer for K, replacing nothing (the caller dropped any). */
static int store(struct dnscache *c, const struct key *k, enum dns_status status,
                 const struct dns_result *r, uint64_t expires_ms) {
  struct entry *e = entry_alloc(k, payload_size(r));
  if (e == NULL)
    return -ENOMEM;
  if (e->bytes > c->limits.max_bytes || c->limits.max_entries == 0) {
    free(e);
    return 0;
  }
  e->status = status;
  e->expires_ms = expires_ms;
  pack(e, r);
  table_insert(c, e);
  lru_push_front(c, e);
  c->stats.entries++;
  c->stats.bytes += e->bytes;
  c->stats.stores++;
  evict(c);
  return 0;
}

/* ---- API ------------------------------------------------------------------------ */

int dnscache_new(const struct dnscache_limits *limits, struct dnscache **out) {
  if (limits->min_ttl_ms > limits->max_ttl_ms)
    return -EINVAL;
  struct dnscache *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  size_t n = MIN_BUCKETS;
  while (n < limits->max_entries && n < (SIZE_MAX / 2) / sizeof(*c->buckets))
    n *= 2;
  c->buckets = calloc(n, sizeof(*c->buckets));
  if (c->buckets == NULL) {
    free(c);
    return -ENOMEM;
  }
  c->limits = *limits;
  c->mask = n - 1;
  c->stats.table_bytes = n * sizeof(*c->buckets) + sizeof(*c);
  *out = c;
  return 0;
}

void dnscache_free(struct dnscache *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i <= c->mask; i++) {
    while (c->buckets[i] != NULL)
      entry_drop(c, c->buckets[i]);
  }
  free(c->buckets);
  free(c);
}

/* A MISS: records a pending entry with W as its first waiter. */
static int start_pending(struct dnscache *c, const struct key *k, struct dnscache_waiter *w) {
  struct entry *e = entry_alloc(k, 0);
  if (e == NULL)
    return -ENOMEM;
  e->pending = true;
  table_insert(c, e);
  waitlist_append(&e->waiters, w);
  c->stats.pending++;
  c->stats.bytes += e->bytes;
  return 0;
}

int dnscache_lookup(struct dnscache *c, const char *name, uint16_t port, uint64_t now_ms,
                    struct dnscache_waiter *w, enum dnscache_state *state,
                    enum dns_status *status, struct dns_result *out) {
  struct key k;
  assert(w == NULL || w->list == NULL);
  if (key_make(c, name, &k) < 0)
    return -EINVAL;
  struct entry *e = table_find(c, &k);
  if (e != NULL && !e->pending && now_ms >= e->expires_ms) {
    c->stats.expired++;
    entry_drop(c, e);
    e = NULL;
  }
  if (e != NULL && e->pending) {
    *state = DNSCACHE_PENDING;
    c->stats.joins++;
    if (w != NULL)
      waitlist_append(&e->waiters, w);
    return 0;
  }
  if (e != NULL) {
    *state = DNSCACHE_HIT;
    c->stats.hits++;
    lru_unlink(c, e);
    lru_push_front(c, e);
    *status = e->status;
    if (out != NULL)
      unpack(e, port, now_ms, out);
    return 0;
  }
  *state = DNSCACHE_MISS;
  c->stats.misses++;
  return w != NULL ? start_pending(c, &k, w) : 0;
}

int dnscache_complete(struct dnscache *c, const char *name, enum dns_status status,
                      const struct dns_result *result, uint64_t now_ms,
                      struct dnscache_waitlist *notify) {
  struct key k;
  notify->head = notify->tail = NULL;
  if (key_make(c, name, &k) < 0)
    return -EINVAL;
  struct entry *e = table_find(c, &k);
  if (e != NULL && e->pending)
    waitlist_move(&e->waiters, notify);
  if (e != NULL)
    entry_drop(c, e); /* a pending entry, or an answer this one replaces */
  uint64_t keep = keep_for(&c->limits, &status, result);
  if (keep == 0)
    return 0;
  return store(c, &k, status, result, now_ms + keep);
}

void dnscache_set_port(struct dns_result *r, uint16_t port) {
  for (size_t i = 0; i < r->naddrs; i++) {
    struct sockaddr_storage *a = &r->addrs[i];
    if (a->ss_family == AF_INET6)
      ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
    else if (a->ss_family == AF_INET)
      ((struct sockaddr_in *)a)->sin_port = htons(port);
  }
}

void dnscache_stats(const struct dnscache *c, struct dnscache_stats *out) {
  *out = c->stats;
}
