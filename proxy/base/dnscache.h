/* The resolver's cache: answers (addresses, CNAME chain, status) keyed by
 * normalised name, kept for their TTL clamped to [min_ttl, max_ttl]
 * (NXDOMAIN and NODATA for negative_ttl), bounded by entry count and bytes
 * with least-recently-used eviction, O(1) lookups and stores. It also
 * coalesces concurrent lookups of one name: the first asker gets MISS and
 * starts the query, later askers get PENDING and wait on the same answer.
 *
 * A pure data structure: no loop, no sockets, no clock reads. The caller
 * passes NOW_MS (monotonic milliseconds) to every call, and proxy/dns.c
 * drives it:
 *
 *   lookup(name, &waiter)  HIT      use the result now
 *                          MISS     start a query; the waiter is attached
 *                          PENDING  a query is running; the waiter is attached
 *   answer arrives         complete(name, status, result, &notify), then pop
 *                          each waiter from NOTIFY and hand it the answer
 *   connection goes away   detach(&waiter); the others keep waiting
 *
 * Not thread-safe: one cache per loop. */
#ifndef EMBARGO_PROXY_DNSCACHE_H
#define EMBARGO_PROXY_DNSCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/base/dns.h"

struct dnscache;

struct dnscache_limits {
  uint64_t min_ttl_ms;      /* answers are kept at least this long */
  uint64_t max_ttl_ms;      /* and at most this long */
  uint64_t negative_ttl_ms; /* NXDOMAIN / NODATA kept this long; 0: not kept */
  size_t max_entries;       /* answers kept; 0: none (lookups still coalesce) */
  size_t max_bytes;         /* bytes of kept answers, entry headers included */
  uint64_t seed[2];         /* hash key: random in production, so that peers
                               cannot pick names that collide */
};

/* Counters for metrics; they only grow, except the gauges marked. */
struct dnscache_stats {
  uint64_t hits;      /* answered from the cache */
  uint64_t misses;    /* nothing usable: a query was due */
  uint64_t joins;     /* waited on a query already running */
  uint64_t expired;   /* an entry found past its expiry (counted in misses too) */
  uint64_t evictions; /* entries dropped to stay within the bounds */
  uint64_t stores;    /* answers stored */
  size_t entries;     /* gauge: answers held */
  size_t pending;     /* gauge: queries running */
  size_t bytes;       /* gauge: bytes of answers and pending entries */
  size_t table_bytes; /* gauge: the hash table itself */
};

enum dnscache_state {
  DNSCACHE_HIT,     /* *status and the result are filled */
  DNSCACHE_MISS,    /* the caller must start a query and later call complete */
  DNSCACHE_PENDING  /* a query for the name is running; wait for complete */
};

struct dnscache_waiter;

/* Waiters to notify, as handed out by dnscache_complete. */
struct dnscache_waitlist {
  struct dnscache_waiter *head, *tail;
};

/* Embedded in the caller's per-lookup object; zero it before first use.
 * While waiting, it is linked into the cache (or into a waitlist handed to
 * the caller), so it must stay in place until popped or detached. */
struct dnscache_waiter {
  struct dnscache_waiter *prev, *next;
  struct dnscache_waitlist *list; /* NULL when not waiting */
  void *data;                     /* the caller's; never touched */
};

/* Creates a cache with LIMITS (copied). Returns 0 and *out, -EINVAL if
 * min_ttl > max_ttl, or -ENOMEM. */
int dnscache_new(const struct dnscache_limits *limits, struct dnscache **out);

/* Frees C and every entry. Waiters still attached are detached (their list
 * becomes NULL), not notified. NULL-safe. */
void dnscache_free(struct dnscache *c);

/* Looks NAME up (a host name; compared case-insensitively, one trailing dot
 * ignored). *state says what happened:
 *   HIT      *status and, if OUT is not NULL, *OUT are filled: addresses with
 *            PORT, the CNAME chain, ttl = seconds left (rounded up). A
 *            negative answer is a HIT with *status NXDOMAIN or NODATA;
 *   MISS     nothing usable (an expired entry is dropped). If W is not NULL
 *            a pending entry is created with W as its first waiter; with W
 *            NULL nothing is recorded (a peek);
 *   PENDING  a query is running; W, if not NULL, is attached to it.
 * W must not be waiting already. Returns 0, -EINVAL for an empty or
 * over-long name, or -ENOMEM (nothing attached). */
int dnscache_lookup(struct dnscache *c, const char *name, uint16_t port, uint64_t now_ms,
                    struct dnscache_waiter *w, enum dnscache_state *state,
                    enum dns_status *status, struct dns_result *out);

/* Records the answer for NAME: STATUS and RESULT (borrowed; may be NULL for
 * a failure). DNS_OK with addresses is kept for RESULT->ttl clamped to
 * [min_ttl, max_ttl]; DNS_OK without addresses counts as NODATA; NXDOMAIN and
 * NODATA are kept for negative_ttl; TIMEOUT, SERVFAIL and ERROR are not kept.
 * Storing may evict least-recently-used answers. The name's waiters are
 * moved to NOTIFY (initialised here, whatever the return): pop them with
 * dnscache_waitlist_pop and hand each the answer; one may detach another
 * meanwhile. Returns 0, or -ENOMEM when the answer could not be kept. */
int dnscache_complete(struct dnscache *c, const char *name, enum dns_status status,
                      const struct dns_result *result, uint64_t now_ms,
                      struct dnscache_waitlist *notify);

/* Removes and returns the first waiter of L (its list becomes NULL), or NULL
 * when L is empty. */
struct dnscache_waiter *dnscache_waitlist_pop(struct dnscache_waitlist *l);

/* Stops W waiting, wherever it waits (a pending entry or a waitlist); the
 * query itself keeps running for the others. NULL-safe, idempotent. */
void dnscache_detach(struct dnscache_waiter *w);

/* Sets the port of every address of R (answers are cached without one). */
void dnscache_set_port(struct dns_result *r, uint16_t port);

void dnscache_stats(const struct dnscache *c, struct dnscache_stats *out);

#endif
