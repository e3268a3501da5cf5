/* c-ares on the libuv loop. */
#include "proxy/base/dns.h"
#include "proxy/base/metrics.h"

#include <ares.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/normalise.h"
#include "proxy/base/dnscache.h"
#include "proxy/base/log.h"

struct dns_poll {
  uv_poll_t handle;
  ares_socket_t fd;
  struct resolver *r;
  struct dns_poll *next;
};

/* Answers and the lookups running, shared by the resolvers of every
 * worker: a name is resolved by one loop at a time, the others wait for its
 * answer. */
struct resolver_cache {
  uv_mutex_t mu;          /* guards the cache, and every resolver's links and inbox */
  struct dnscache *cache; /* its waiters are struct dns_link */
};

/* A resolver waiting in the shared cache for a name another loop (or its
 * own) is resolving. */
struct dns_link {
  struct dnscache_waiter waiter; /* in the shared cache's pending entry */
  struct resolver *r;
  struct dns_link *prev, *next;  /* R's links */
  char name[];
};

/* An answer one loop hands to another, through its inbox. */
struct dns_delivery {
  struct dns_delivery *next;
  enum dns_status status;
  bool again;                    /* the loop resolving it stopped: look it up again */
  struct dns_result result;
  char name[];
};

struct resolver {
  uv_loop_t *loop;
  struct dnscache *cache;         /* this loop's lookups running (and answers, without SHARED) */
  struct resolver_cache *shared;  /* answers and lookups running, or NULL (borrowed) */
  struct dns_link *links;         /* under shared->mu */
  struct dns_delivery *inbox;     /* under shared->mu */
  uv_async_t wake;                /* the inbox has deliveries (with SHARED) */
  bool wake_open;                 /* under shared->mu */
  ares_channel channel;
  uv_timer_t timer;
  struct dns_poll *polls;
  int closing;
  struct resolver_health health;
};

/* One caller waiting for an answer. */
struct dns_query {
  struct dnscache_waiter waiter; /* linked into the cache while waiting */
  dns_cb cb;
  void *arg;
  struct dns_query **handle;     /* the caller's pointer to this query */
  uint16_t port;
};

/* One query on the wire, shared by every caller waiting for NAME. */
struct dns_flight {
  struct resolver *r;
  uint64_t started;              /* loop time the query was sent */
  char name[];
};

static void arm_timer(struct resolver *r);

static void on_poll_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_timer_closed(uv_handle_t *h);
static void on_inbox(uv_async_t *h);
static void shared_leave(struct resolver *r);

/* The doorbell closes first: the timer's close callback frees the resolver. */
static void on_wake_closed(uv_handle_t *h) {
  struct resolver *r = h->data;
  uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static void on_timer_closed(uv_handle_t *h) {
  struct resolver *r = h->data;
  ares_destroy(r->channel); /* runs the flights' callbacks with ARES_EDESTRUCTION */
  dnscache_free(r->cache);
  free(r);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct dns_poll *p = h->data;
  ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
  /* On a poll error let c-ares read the socket: it notices the failure. */
  if (status < 0 || (events & UV_READABLE))
    rfd = p->fd;
  if (status == 0 && (events & UV_WRITABLE))
    wfd = p->fd;
  ares_process_fd(p->r->channel, rfd, wfd);
  arm_timer(p->r);
}

static void on_timeout(uv_timer_t *t) {
  struct resolver *r = t->data;
  ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  arm_timer(r);
}

static void arm_timer(struct resolver *r) {
  struct timeval tv, *next;
  if (r->closing)
    return;
  next = ares_timeout(r->channel, NULL, &tv);
  if (next == NULL) {
    uv_timer_stop(&r->timer);
    return;
  }
  uv_timer_start(&r->timer, on_timeout, (uint64_t)next->tv_sec * 1000 + next->tv_usec / 1000 + 1, 0);
}

static struct dns_poll *poll_find(struct resolver *r, ares_socket_t fd, struct dns_poll ***link) {
  struct dns_poll **pp;
  for (pp = &r->polls; *pp != NULL; pp = &(*pp)->next) {
    if ((*pp)->fd == fd) {
      *link = pp;
      return *pp;
    }
  }
  return NULL;
}

/* c-ares tells us which sockets it wants watched and for what. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
  struct resolver *r = data;
  struct dns_poll **link = NULL, *p = poll_find(r, fd, &link);
  int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);

  if (events == 0) {
    if (p != NULL) {
      *link = p->next;
      uv_poll_stop(&p->handle);
      uv_close((uv_handle_t *)&p->handle, on_poll_closed);
    }
    return;
  }
  if (p == NULL) {
    p = calloc(1, sizeof(*p));
    if (p == NULL || uv_poll_init_socket(r->loop, &p->handle, fd) != 0) {
      free(p);
      log_diag(LOG_ERR, 0, "dns: cannot watch resolver socket %d", (int)fd);
      return;
    }
    p->fd = fd;
    p->r = r;
    p->handle.data = p;
    p->next = r->polls;
    r->polls = p;
  }
  uv_poll_start(&p->handle, events, on_poll);
}

static void random_seed(uint64_t seed[2]) {
  uv_random(NULL, NULL, seed, 2 * sizeof(seed[0]), 0, NULL);
}

int resolver_cache_new(const struct dnscache_limits *limits, struct resolver_cache **out) {
  struct dnscache_limits l = *limits;
  struct resolver_cache *c = calloc(1, sizeof(*c));
  int rc;
  *out = NULL;
  if (c == NULL)
    return -ENOMEM;
  random_seed(l.seed);
  if ((rc = dnscache_new(&l, &c->cache)) != 0) {
    free(c);
    return rc;
  }
  if (uv_mutex_init(&c->mu) != 0) {
    dnscache_free(c->cache);
    free(c);
    return -ENOMEM;
  }
  *out = c;
  return 0;
}

void resolver_cache_free(struct resolver_cache *c) {
  if (c == NULL)
    return;
  dnscache_free(c->cache);
  uv_mutex_destroy(&c->mu);
  free(c);
}

void resolver_cache_stats(struct resolver_cache *c, struct dnscache_stats *out) {
  uv_mutex_lock(&c->mu);
  dnscache_stats(c->cache, out);
  uv_mutex_unlock(&c->mu);
}

int resolver_new(uv_loop_t *loop, const char *servers, uint64_t timeout_ms,
                 const struct dnscache_limits *cache, struct resolver_cache *shared,
                 struct resolver **out, char *err, size_t errsize) {
  struct dnscache_limits limits = {0};
  struct ares_options opts;
  struct resolver *r;
  int rc, optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;

  if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
    snprintf(err, errsize, "c-ares: %s", ares_strerror(rc));
    return -EIO;
  }
  if ((r = calloc(1, sizeof(*r))) == NULL)
    return -ENOMEM;
  if (cache != NULL && shared == NULL)
    limits = *cache; /* with SHARED, only the lookups running are kept here */
  r->shared = shared;
  random_seed(limits.seed);
  if ((rc = dnscache_new(&limits, &r->cache)) != 0) {
    snprintf(err, errsize, "DNS cache: invalid limits");
    free(r);
    return rc;
  }
  memset(&opts, 0, sizeof(opts));
  /* The name judged is the name resolved: no resolv.conf search suffixes. */
  opts.flags = ARES_FLAG_NOSEARCH;
  opts.sock_state_cb = on_sock_state;
  opts.sock_state_cb_data = r;
  /* Two tries per server, each a share of the overall lookup budget. */
  opts.tries = 2;
  opts.timeout = (int)(timeout_ms / 4 > 250 ? timeout_ms / 4 : 250);
  if ((rc = ares_init_options(&r->channel, &opts, optmask)) != ARES_SUCCESS) {
    snprintf(err, errsize, "c-ares: %s", ares_strerror(rc));
    dnscache_free(r->cache);
    free(r);
    return -EIO;
  }
  if (servers != NULL && servers[0] != '\0' &&
      (rc = ares_set_servers_ports_csv(r->channel, servers)) != ARES_SUCCESS) {
    snprintf(err, errsize, "resolver \"%s\": %s", servers, ares_strerror(rc));
    ares_destroy(r->channel);
    dnscache_free(r->cache);
    free(r);
    return -EINVAL;
  }
  r->loop = loop;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  if (shared != NULL) {
    uv_async_init(loop, &r->wake, on_inbox);
    r->wake.data = r;
    uv_mutex_lock(&shared->mu);
    r->wake_open = true;
    uv_mutex_unlock(&shared->mu);
  }
  *out = r;
  return 0;
}

void resolver_close(struct resolver *r) {
  struct dns_poll *p, *next;
  if (r == NULL || r->closing)
    return;
  r->closing = 1;
  if (r->shared != NULL)
    shared_leave(r);
  /* Fails every query on the wire; their waiters are told DNS_ERROR (other
   * loops waiting for one of them look the name up again). */
  ares_cancel(r->channel);
  for (p = r->polls; p != NULL; p = next) {
    next = p->next;
    uv_poll_stop(&p->handle);
    uv_close((uv_handle_t *)&p->handle, on_poll_closed);
  }
  r->polls = NULL;
  if (r->shared != NULL)
    uv_close((uv_handle_t *)&r->wake, on_wake_closed);
  else
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static enum dns_status map_status(int status) {
  switch (status) {
  case ARES_SUCCESS: return DNS_OK;
  case ARES_ENOTFOUND: return DNS_NXDOMAIN;
  case ARES_ENODATA: return DNS_NODATA;
  case ARES_ETIMEOUT: return DNS_TIMEOUT;
  case ARES_ESERVFAIL:
  case ARES_EREFUSED:
  case ARES_ECONNREFUSED: return DNS_SERVFAIL;
  default: return DNS_ERROR;
  }
}

/* Fills RES from AI. The CNAME chain is normalised like any name Embargo
 * judges (DNS is case-insensitive and answers may say DNL-01.GEO...), and a
 * chain that cannot be judged whole makes the answer unusable: fail closed.
 * Returns DNS_OK or DNS_BADANSWER. */
static enum dns_status fill_result(const struct ares_addrinfo *ai, uint16_t port,
                                   struct dns_result *res) {
  const struct ares_addrinfo_node *n;
  const struct ares_addrinfo_cname *c;

  res->ttl = UINT32_MAX;
  for (n = ai->nodes; n != NULL && res->naddrs < DNS_MAX_ADDRS; n = n->ai_next) {
    struct sockaddr_storage *ss = &res->addrs[res->naddrs];
    if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in)) {
      memcpy(ss, n->ai_addr, sizeof(struct sockaddr_in));
      ((struct sockaddr_in *)ss)->sin_port = htons(port);
    } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
      struct sockaddr_in tmp;
      const struct sockaddr *sa = sockaddr_unmapped(n->ai_addr, &tmp);
      memcpy(ss, sa, sa == n->ai_addr ? sizeof(struct sockaddr_in6) : sizeof(tmp));
      if (sa == n->ai_addr)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
      else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    } else {
      continue;
    }
    if (n->ai_ttl >= 0 && (uint32_t)n->ai_ttl < res->ttl)
      res->ttl = (uint32_t)n->ai_ttl;
    res->naddrs++;
  }
  for (c = ai->cnames; c != NULL; c = c->next) {
    struct host h;
    if (c->name == NULL)
      continue;
    if (res->ncnames == DNS_MAX_CNAMES ||
        host_normalise(c->name, strlen(c->name), &h) != 0 || h.kind != HOST_NAME)
      return DNS_BADANSWER;
    memcpy(res->cnames[res->ncnames++], h.name, h.len + 1);
  }
  return DNS_OK;
}

static uint64_t now_ms(const struct resolver *r) {
  return uv_now(r->loop);
}

/* Hands one waiter its answer, with its own port. */
static void notify(struct dns_query *q, enum dns_status st, struct dns_result *res) {
  *q->handle = NULL;
  if (res != NULL)
    dnscache_set_port(res, q->port);
  q->cb(q->arg, st, res);
  free(q);
}

/* Metrics and the resolver's health: a server that answered (even NXDOMAIN)
 * is up; a timeout or SERVFAIL counts against it. */
static void note_outcome(struct resolver *r, enum dns_status st, uint64_t ms) {
  static const enum metric_counter ids[] = {
      [DNS_OK] = METRIC_DNS_OK,           [DNS_NXDOMAIN] = METRIC_DNS_NXDOMAIN,
      [DNS_NODATA] = METRIC_DNS_NODATA,   [DNS_TIMEOUT] = METRIC_DNS_TIMEOUT,
      [DNS_SERVFAIL] = METRIC_DNS_SERVFAIL, [DNS_BADANSWER] = METRIC_DNS_BADANSWER,
      [DNS_ERROR] = METRIC_DNS_ERROR};
  metrics_add(ids[st], 1);
  metrics_observe_ms(METRIC_H_RESOLVE, ms);
  if (st == DNS_TIMEOUT || st == DNS_SERVFAIL) {
    r->health.last_fail_ms = now_ms(r);
    r->health.last_fail = st;
  } else if (st != DNS_ERROR) {
    r->health.last_ok_ms = now_ms(r);
  }
}

/* Hands every waiter of NAME on this loop its answer (a copy each; RES may
 * be NULL). */
static void complete_local(struct resolver *r, const char *name, enum dns_status st,
                           const struct dns_result *res) {
  struct dnscache_waitlist waiters;
  struct dnscache_waiter *w;
  dnscache_complete(r->cache, name, st, res, now_ms(r), &waiters);
  while ((w = dnscache_waitlist_pop(&waiters)) != NULL) {
    struct dns_result *mine = res != NULL ? malloc(sizeof(*mine)) : NULL;
    if (res != NULL && mine == NULL) {
      notify(w->data, DNS_ERROR, NULL);
      continue;
    }
    if (mine != NULL)
      memcpy(mine, res, sizeof(*mine));
    notify(w->data, st, mine);
    free(mine);
  }
}

static void shared_complete(struct resolver *r, const char *name, enum dns_status st,
                            const struct dns_result *res, bool again);
static int start_flight(struct resolver *r, const char *name);

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai) {
  struct dns_flight *f = arg;
  struct resolver *r = f->r;
  struct dns_result *res = calloc(1, sizeof(*res));
  enum dns_status st = map_status(status);

  if (res == NULL)
    st = DNS_ERROR;
  else if (st == DNS_OK && ai != NULL)
    st = fill_result(ai, 0, res);
  if (st == DNS_OK && (res == NULL || res->naddrs == 0))
    st = DNS_NODATA;
  if (ai != NULL)
    ares_freeaddrinfo(ai);
  if (!r->closing)
    note_outcome(r, st, now_ms(r) - f->started);
  if (r->shared != NULL)
    shared_complete(r, f->name, st, res, r->closing && st == DNS_ERROR);
  else
    complete_local(r, f->name, st, res);
  free(res);
  free(f);
}

static int start_flight(struct resolver *r, const char *name) {
  struct ares_addrinfo_hints hints;
  size_t len = strlen(name);
  struct dns_flight *f = malloc(sizeof(*f) + len + 1);

  if (f == NULL)
    return -ENOMEM;
  f->r = r;
  f->started = now_ms(r);
  memcpy(f->name, name, len + 1);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* The callback may run before this returns (answers from /etc/hosts). */
  ares_getaddrinfo(r->channel, name, NULL, &hints, on_addrinfo, f);
  arm_timer(r);
  return 0;
}

/* ---- lookups shared between loops (under shared->mu) -------------------- */

static void link_add(struct resolver *r, struct dns_link *l) {
  l->prev = NULL;
  l->next = r->links;
  if (r->links != NULL)
    r->links->prev = l;
  r->links = l;
}

static void link_remove(struct resolver *r, struct dns_link *l) {
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    r->links = l->next;
  if (l->next != NULL)
    l->next->prev = l->prev;
}

/* Queues NAME's answer for R's loop and rings its doorbell. A resolver
 * that is closing takes nothing. */
static void deliver(struct resolver *r, const char *name, enum dns_status st,
                    const struct dns_result *res, bool again) {
  size_t len = strlen(name);
  struct dns_delivery *d;
  if (!r->wake_open || (d = calloc(1, sizeof(*d) + len + 1)) == NULL)
    return; /* out of memory: its lookups end at their timeout (timeouts.resolve) */
  d->status = st;
  d->again = again;
  if (res != NULL)
    d->result = *res;
  memcpy(d->name, name, len + 1);
  d->next = r->inbox;
  r->inbox = d;
  uv_async_send(&r->wake);
}

/* NAME's query on this loop ended: the answer goes into the shared cache
 * and to every loop waiting for it (AGAIN: this loop is stopping and its
 * query was cancelled, so they look the name up again), then to this
 * loop's own waiters. */
static void shared_complete(struct resolver *r, const char *name, enum dns_status st,
                            const struct dns_result *res, bool again) {
  struct resolver_cache *sh = r->shared;
  struct dnscache_waitlist links;
  struct dnscache_waiter *w;
  uv_mutex_lock(&sh->mu);
  dnscache_complete(sh->cache, name, st, res, now_ms(r), &links);
  while ((w = dnscache_waitlist_pop(&links)) != NULL) {
    struct dns_link *l = w->data;
    link_remove(l->r, l);
    if (l->r != r)
      deliver(l->r, name, st, res, again);
    free(l);
  }
  uv_mutex_unlock(&sh->mu);
  complete_local(r, name, st, res);
}

/* This loop's first lookup of NAME: the shared cache's answer at once, or
 * a wait for the loop already resolving it, or a query of this loop's.
 * Returns 0 (the waiters may have been answered already), or a negative
 * code with nothing waiting in the shared cache. */
static int shared_join(struct resolver *r, const char *name) {
  struct resolver_cache *sh = r->shared;
  size_t len = strlen(name);
  struct dns_link *l = calloc(1, sizeof(*l) + len + 1);
  struct dns_result *res = malloc(sizeof(*res));
  enum dnscache_state state = DNSCACHE_MISS;
  enum dns_status st = DNS_ERROR;
  int rc = -ENOMEM;

  if (l == NULL || res == NULL)
    goto out;
  l->r = r;
  l->waiter.data = l;
  memcpy(l->name, name, len + 1);
  uv_mutex_lock(&sh->mu);
  rc = dnscache_lookup(sh->cache, name, 0, now_ms(r), &l->waiter, &state, &st, res);
  if (rc == 0 && state != DNSCACHE_HIT) {
    link_add(r, l);
    l = NULL; /* the shared cache's until the answer */
  }
  uv_mutex_unlock(&sh->mu);
  if (rc == 0 && state == DNSCACHE_HIT)
    complete_local(r, name, st, st == DNS_OK ? res : NULL);
  else if (rc == 0 && state == DNSCACHE_MISS && start_flight(r, name) != 0)
    shared_complete(r, name, DNS_ERROR, NULL, false); /* the others wait no longer */
out:
  free(l);
  free(res);
  return rc;
}

/* The doorbell: answers other loops got for names this loop waits for. */
static void on_inbox(uv_async_t *h) {
  struct resolver *r = h->data;
  struct dns_delivery *d, *next;
  uv_mutex_lock(&r->shared->mu);
  d = r->inbox;
  r->inbox = NULL;
  uv_mutex_unlock(&r->shared->mu);
  for (; d != NULL; d = next) {
    next = d->next;
    if (!d->again)
      complete_local(r, d->name, d->status, &d->result);
    else if (r->closing || shared_join(r, d->name) != 0)
      complete_local(r, d->name, DNS_ERROR, NULL);
    free(d);
  }
}

/* The resolver is closing: it waits for nothing any more, and takes no
 * answer from other loops. */
static void shared_leave(struct resolver *r) {
  struct dns_delivery *d;
  uv_mutex_lock(&r->shared->mu);
  r->wake_open = false;
  while (r->links != NULL) {
    struct dns_link *l = r->links;
    link_remove(r, l);
    dnscache_detach(&l->waiter);
    free(l);
  }
  while ((d = r->inbox) != NULL) {
    r->inbox = d->next;
    free(d);
  }
  uv_mutex_unlock(&r->shared->mu);
}

int resolver_lookup(struct resolver *r, const char *name, uint16_t port, dns_cb cb,
                    void *arg, struct dns_query **handle) {
  struct dns_query *q = calloc(1, sizeof(*q));
  struct dns_result *res = malloc(sizeof(*res));
  enum dnscache_state state;
  enum dns_status st = DNS_ERROR;
  int rc;

  if (q == NULL || res == NULL) {
    free(q);
    free(res);
    return -ENOMEM;
  }
  q->cb = cb;
  q->arg = arg;
  q->port = port;
  q->handle = handle;
  q->waiter.data = q;
  *handle = q;
  /* With a shared cache, this one holds no answers: a miss here is this
   * loop's first lookup of the name running, a pending one joins it. */
  rc = dnscache_lookup(r->cache, name, port, now_ms(r), &q->waiter, &state, &st, res);
  if (rc == 0 && state == DNSCACHE_MISS)
    rc = r->shared != NULL ? shared_join(r, name) : start_flight(r, name);
  if (rc != 0) {
    dnscache_detach(&q->waiter);
    *handle = NULL;
    free(q);
  } else if (state == DNSCACHE_HIT) {
    notify(q, st, st == DNS_OK ? res : NULL);
  }
  free(res);
  return rc;
}

void resolver_cancel(struct dns_query **handle) {
  struct dns_query *q;
  if (handle == NULL || (q = *handle) == NULL)
    return;
  dnscache_detach(&q->waiter);
  free(q);
  *handle = NULL;
}

void resolver_stats(const struct resolver *r, struct dnscache_stats *out) {
  dnscache_stats(r->cache, out);
}

void resolver_get_health(const struct resolver *r, struct resolver_health *out) {
  *out = r->health;
}

/* The one address of the IP-literal host H, with its port, into SS. */
static void literal_addr(const struct host *h, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (h->kind == HOST_IPV4) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(h->port);
    memcpy(&in->sin_addr, h->addr, 4);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(h->port);
    memcpy(&in6->sin6_addr, h->addr, 16);
  }
}

void dns_result_literal(struct dns_result *r, const struct host *h) {
  memset(r, 0, sizeof(*r));
  r->naddrs = 1;
  literal_addr(h, &r->addrs[0]);
}

/* ---- answers the connections keep ------------------------------------------ */

/* One allocation: the header, the addresses (FIRST, if not NULL, then
 * ADDRS), the chain's pointers, then the names' bytes (NAMES copied). */
static struct dns_answer *answer_make(const char *const *names, size_t ncnames,
                                      const struct sockaddr *first,
                                      const struct sockaddr_storage *addrs, size_t naddrs,
                                      uint32_t ttl) {
  size_t n = (first != NULL) + naddrs, bytes = 0, i;
  struct dns_answer *a;
  const char **ptrs;
  char *p;

  for (i = 0; i < ncnames; i++)
    bytes += strlen(names[i]) + 1;
  a = malloc(sizeof(*a) + n * sizeof(a->addrs[0]) + ncnames * sizeof(char *) + bytes);
  if (a == NULL)
    return NULL;
  a->refs = 1;
  a->ttl = ttl;
  a->naddrs = n;
  a->ncnames = ncnames;
  if (first != NULL) {
    memset(&a->addrs[0], 0, sizeof(a->addrs[0]));
    memcpy(&a->addrs[0], first,
           first->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  }
  if (naddrs > 0)
    memcpy(&a->addrs[first != NULL], addrs, naddrs * sizeof(a->addrs[0]));
  ptrs = (const char **)(void *)&a->addrs[n];
  p = (char *)(ptrs + ncnames);
  for (i = 0; i < ncnames; i++) {
    size_t len = strlen(names[i]) + 1;
    memcpy(p, names[i], len);
    ptrs[i] = p;
    p += len;
  }
  a->cnames = ptrs;
  return a;
}

struct dns_answer *dns_answer_new(const struct dns_result *r, const struct sockaddr *first,
                                  bool r_addrs) {
  const char *names[DNS_MAX_CNAMES];
  size_t i, n = r != NULL ? r->ncnames : 0;
  bool with = r != NULL && r_addrs;
  for (i = 0; i < n; i++)
    names[i] = r->cnames[i];
  return answer_make(names, n, first, with ? r->addrs : NULL, with ? r->naddrs : 0,
                     r != NULL ? r->ttl : 0);
}

struct dns_answer *dns_answer_redial(const struct dns_answer *a, const struct sockaddr *addr) {
  return answer_make(a != NULL ? a->cnames : NULL, a != NULL ? a->ncnames : 0, addr, NULL, 0,
                     a != NULL ? a->ttl : 0);
}

struct dns_answer *dns_answer_literal(const struct host *h) {
  struct sockaddr_storage ss;
  literal_addr(h, &ss);
  return answer_make(NULL, 0, (const struct sockaddr *)&ss, NULL, 0, 0);
}

struct dns_answer *dns_answer_ref(struct dns_answer *a) {
  if (a != NULL)
    a->refs++;
  return a;
}

void dns_answer_unref(struct dns_answer *a) {
  if (a != NULL && --a->refs == 0)
    free(a);
}

const struct sockaddr *sockaddr_unmapped(const struct sockaddr *sa, struct sockaddr_in *tmp) {
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
  if (sa->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
    return sa;
  memset(tmp, 0, sizeof(*tmp));
  tmp->sin_family = AF_INET;
  tmp->sin_port = in6->sin6_port;
  memcpy(&tmp->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
  return (const struct sockaddr *)tmp;
}

bool sockaddr_same_ip(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family)
    return false;
  if (a->sa_family == AF_INET)
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                  &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
  return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

const char *dns_status_name(enum dns_status s) {
  static const char *const names[] = {"NOERROR",  "NXDOMAIN",   "NODATA",
                                      "timeout",  "SERVFAIL",   "unusable CNAME chain",
                                      "error"};
  return s <= DNS_ERROR ? names[s] : "error";
}
