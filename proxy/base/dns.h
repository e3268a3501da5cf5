/* Asynchronous DNS resolution: c-ares driven by the libuv loop (its
 * socket-state callback feeds uv_poll_t handles, a uv_timer_t drives its
 * timeouts). Only this module includes ares.h. */
#ifndef EMBARGO_PROXY_DNS_H
#define EMBARGO_PROXY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define DNS_MAX_ADDRS 16
#define DNS_MAX_CNAMES 16

enum dns_status {
  DNS_OK,
  DNS_NXDOMAIN, /* the name does not exist */
  DNS_NODATA,   /* the name exists but has no A/AAAA records */
  DNS_TIMEOUT,  /* no server answered in time */
  DNS_SERVFAIL, /* servers failed or refused */
  DNS_BADANSWER,/* a CNAME that is not a host name, or a chain too long to judge */
  DNS_ERROR     /* anything else (bad name, out of memory, shutdown) */
};

struct dns_result {
  size_t naddrs;
  struct sockaddr_storage addrs[DNS_MAX_ADDRS]; /* in the order to try */
  size_t ncnames;
  char cnames[DNS_MAX_CNAMES][254]; /* CNAME chain targets, in order, normalised */
  uint32_t ttl;                     /* smallest TTL seen */
};

struct resolver;
struct dns_query;
struct host;

/* An answer as the connections keep it: the CNAME chain and the addresses
 * to try (with the port asked for), in one allocation sized to what it
 * holds. Immutable once made, and reference-counted: the exchange that
 * looked it up, every upstream dialled from it and every later request
 * reusing such an upstream share the one answer, never a copy. It belongs
 * to one loop (the count is not atomic): an answer never crosses threads. */
struct dns_answer {
  unsigned refs;
  uint32_t ttl; /* smallest TTL seen (0 for a literal) */
  size_t naddrs;
  size_t ncnames;
  const char *const *cnames;       /* CNAME chain targets, in order, normalised */
  struct sockaddr_storage addrs[]; /* naddrs, in the order to try */
};

/* A new answer (one reference, the caller's) with R's CNAME chain (R may
 * be NULL: none) and, as its addresses, FIRST (when not NULL) followed by
 * R's when R_ADDRS. NULL when out of memory. */
struct dns_answer *dns_answer_new(const struct dns_result *r, const struct sockaddr *first,
                                  bool r_addrs);

/* A new answer with A's CNAME chain and ADDR as the one address: the same
 * evidence for a dial to one address already judged. NULL when out of
 * memory. */
struct dns_answer *dns_answer_redial(const struct dns_answer *a, const struct sockaddr *addr);

/* A new answer for the IP-literal host H (HOST_IPV4 or HOST_IPV6): its one
 * address, with its port. NULL when out of memory. */
struct dns_answer *dns_answer_literal(const struct host *h);

/* Another reference to A (NULL-safe); returns A. */
struct dns_answer *dns_answer_ref(struct dns_answer *a);

/* Drops a reference to A, freeing it with the last. NULL-safe. */
void dns_answer_unref(struct dns_answer *a);

/* Fills R (zeroed first) with the one address of the IP-literal host H
 * (HOST_IPV4 or HOST_IPV6) and its port: what an IP literal "resolves" to. */
void dns_result_literal(struct dns_result *r, const struct host *h);

/* Called once per lookup unless it was cancelled first. RESULT is valid only
 * during the call. */
typedef void (*dns_cb)(void *arg, enum dns_status status, const struct dns_result *result);

struct dnscache_limits;
struct dnscache_stats;

/* Answers and lookups running, shared by several resolvers (one per worker
 * loop) under a lock: an answer one worker got serves the others until it
 * expires, and a name is resolved by one loop at a time while the others
 * wait for its answer (handed to their loops through a uv_async_t; if the
 * loop resolving it stops first, they look it up again). */
struct resolver_cache;

/* A shared answer cache bounded by LIMITS (copied; its seed is filled in
 * here). Returns 0 and *OUT, or a negative code. */
int resolver_cache_new(const struct dnscache_limits *limits, struct resolver_cache **out);

/* Frees C once no resolver uses it. NULL-safe. */
void resolver_cache_free(struct resolver_cache *c);

/* C's counters and size, read under its lock. */
void resolver_cache_stats(struct resolver_cache *c, struct dnscache_stats *out);

/* Creates a resolver on LOOP. SERVERS is a c-ares CSV list ("127.0.0.1:5353,
 * [::1]:53") or "" for /etc/resolv.conf. TIMEOUT_MS bounds each lookup.
 * With SHARED (borrowed, may be NULL; it must outlive the resolver),
 * answers and lookups running are kept there, and every lookup of a name
 * running anywhere waits for the one query. Without it, CACHE (copied; NULL: nothing is
 * kept, concurrent lookups still share one query) bounds the resolver's own
 * answer cache; its seed is filled in here. Returns 0 and *out, or a
 * negative code with a message in ERR. */
int resolver_new(uv_loop_t *loop, const char *servers, uint64_t timeout_ms,
                 const struct dnscache_limits *cache, struct resolver_cache *shared,
                 struct resolver **out, char *err, size_t errsize);

/* How the resolvers last did, for readiness: loop times (ms) of the last
 * answered query (any answer, NXDOMAIN too) and of the last that timed out
 * or got SERVFAIL/REFUSED; 0: none yet. */
struct resolver_health {
  uint64_t last_ok_ms;
  uint64_t last_fail_ms;
  enum dns_status last_fail;
};
void resolver_get_health(const struct resolver *r, struct resolver_health *out);

/* The counters of the resolver's own cache (hits, misses, ...; with a
 * shared cache: the lookups that joined one of this loop's). */
void resolver_stats(const struct resolver *r, struct dnscache_stats *out);

/* Cancels outstanding lookups (their callbacks are not called) and closes
 * the resolver's handles; memory is released from their close callbacks.
 * NULL-safe. */
void resolver_close(struct resolver *r);

/* Resolves NAME (a normalised host name, not an IP literal) for both A and
 * AAAA, from the cache when it holds a live answer; lookups of a name
 * already being resolved wait for that query. PORT is filled into each
 * address. *HANDLE receives the query
 * before the lookup starts and is reset to NULL just before CB runs (which
 * may happen before this function returns), so *HANDLE is non-NULL exactly
 * while the query may still be cancelled. Returns 0 or -ENOMEM. */
int resolver_lookup(struct resolver *r, const char *name, uint16_t port, dns_cb cb,
                    void *arg, struct dns_query **handle);

/* Detaches the caller from *HANDLE (NULL-safe): the callback will not run
 * and *HANDLE becomes NULL. The query itself finishes inside c-ares, since
 * ares_cancel would cancel every query on the channel. */
void resolver_cancel(struct dns_query **handle);

/* "NXDOMAIN", "timeout", ... */
const char *dns_status_name(enum dns_status s);

/* SA itself, or, for an IPv4-mapped IPv6 address (::ffff:a.b.c.d), the IPv4
 * address it is, written into TMP: such an address is judged, compared and
 * dialled as IPv4 everywhere. */
const struct sockaddr *sockaddr_unmapped(const struct sockaddr *sa, struct sockaddr_in *tmp);

/* Whether A and B (AF_INET or AF_INET6) hold the same IP address, ports
 * aside; a mapped address differs from its IPv4 form (unmap first). */
bool sockaddr_same_ip(const struct sockaddr *a, const struct sockaddr *b);

#endif
