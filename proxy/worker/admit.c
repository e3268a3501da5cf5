/* Admission of client connections: connection limit, per-client cap,
 * descriptor exhaustion, shared by the workers. See admit.h for the
 * contract. */
#include "proxy/worker/admit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/base/dns.h"
#include "proxy/worker/listener.h"
#include "proxy/base/log.h"
#include "proxy/worker/server.h"

#define FD_HEADROOM 2     /* descriptors a new connection may still need: its upstream, one more accept */
#define FD_RETRY_MS 250   /* retry period while descriptors are exhausted */
#define RATELOG_MS 1000
#define NBUCKETS 1024

struct admit_client {
  struct admit_client *next;
  uint8_t key[17];        /* family, then 4 (IPv4) or 8 (IPv6 /64) address bytes */
  size_t conns;
};

/* Whether the warning may be written now (at most once a second, over
 * every worker). */
static bool ratelog_due(struct ratelog *r) {
  uint64_t now = uv_hrtime() / 1000000 + 1, last = atomic_load(&r->last_ms);
  if (last != 0 && now - last < RATELOG_MS)
    return false;
  return atomic_compare_exchange_strong(&r->last_ms, &last, now);
}

int admit_shared_init(struct admit_shared *sh, void (*wake)(void *arg), void *wake_arg) {
  memset(sh, 0, sizeof(*sh));
  sh->probe_fd = -1;
  sh->wake = wake;
  sh->wake_arg = wake_arg;
  if (uv_mutex_init(&sh->mu) != 0)
    return UV_ENOMEM;
  sh->mu_ready = true;
  if ((sh->table = calloc(NBUCKETS, sizeof(sh->table[0]))) == NULL)
    return UV_ENOMEM;
  sh->nbuckets = NBUCKETS;
  if ((sh->probe_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    return -errno;
  return 0;
}

void admit_shared_log(const struct admit_shared *sh) {
  uint64_t fd = atomic_load(&sh->fd_pauses), limit = atomic_load(&sh->limit_pauses),
           refused = atomic_load(&sh->client_refusals);
  if (fd + limit + refused > 0)
    log_diag(LOG_INFO, 0,
             "admission: out of descriptors %llu time(s), accepting paused %llu time(s) at the "
             "connection limit; %llu connection(s) refused at the per-client cap",
             (unsigned long long)fd, (unsigned long long)limit, (unsigned long long)refused);
}

void admit_shared_free(struct admit_shared *sh) {
  size_t i;
  if (!sh->mu_ready)
    return; /* never initialised, or freed already */
  for (i = 0; sh->table != NULL && i < sh->nbuckets; i++) {
    while (sh->table[i] != NULL) {
      struct admit_client *e = sh->table[i];
      sh->table[i] = e->next;
      free(e);
    }
  }
  free(sh->table);
  sh->table = NULL;
  if (sh->probe_fd >= 0)
    close(sh->probe_fd);
  sh->probe_fd = -1;
  if (sh->mu_ready)
    uv_mutex_destroy(&sh->mu);
  sh->mu_ready = false;
}

int admit_init(struct admit *a, struct server *srv, struct admit_shared *sh) {
  memset(a, 0, sizeof(*a));
  a->srv = srv;
  a->shared = sh;
  uv_timer_init(srv->loop, &a->retry);
  a->retry.data = a;
  return 0;
}

void admit_close(struct admit *a) {
  if (a->closing)
    return;
  a->closing = true;
  if (a->retry.loop != NULL && !uv_is_closing((uv_handle_t *)&a->retry))
    uv_close((uv_handle_t *)&a->retry, NULL);
}

void admit_free(struct admit *a) {
  if (a == NULL)
    return;
  a->srv = NULL;
  a->shared = NULL;
}

/* Whether FD_HEADROOM more descriptors can be opened right now. */
static bool fds_available(const struct admit_shared *sh) {
  int fds[FD_HEADROOM], n, i;
  bool ok = true;
  if (sh->probe_fd < 0)
    return true; /* cannot measure: let accept() tell */
  for (n = 0; n < FD_HEADROOM; n++) {
    if ((fds[n] = fcntl(sh->probe_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
      ok = errno != EMFILE && errno != ENFILE;
      break;
    }
  }
  for (i = 0; i < n; i++)
    close(fds[i]);
  return ok;
}

/* Takes a connection slot if fewer than MAX are taken. */
static bool slot_take(struct admit_shared *sh, size_t max) {
  size_t n = atomic_load(&sh->nconns);
  while (n < max)
    if (atomic_compare_exchange_weak(&sh->nconns, &n, n + 1))
      return true;
  return false;
}

static void slot_give(struct admit_shared *sh) {
  atomic_fetch_sub(&sh->nconns, 1);
}

static void on_retry(uv_timer_t *t);

static void pause_listener(struct admit *a, struct listener *lst, bool fds) {
  if (!lst->paused)
    atomic_fetch_add(&a->shared->npaused, 1);
  lst->paused = true;
  /* Descriptors may be freed by anything (an idle upstream closing), so
   * retry on a timer; a connection slot frees only when one closes. */
  if (fds && !a->closing)
    uv_timer_start(&a->retry, on_retry, FD_RETRY_MS, 0);
}

/* The checks before an accept, taking a slot when they pass; RETRY: LST
 * was paused already, so a failure continues that pause rather than
 * counting a new one. */
static bool may_accept(struct admit *a, struct listener *lst, bool retry) {
  struct admit_shared *sh = a->shared;
  size_t max = a->srv->cfg->limits.max_connections;

  if (!slot_take(sh, max)) {
    uint64_t n =
        retry ? atomic_load(&sh->limit_pauses) : atomic_fetch_add(&sh->limit_pauses, 1) + 1;
    if (ratelog_due(&sh->limit_log))
      log_diag(LOG_WARN, 0,
               "connection limit (%zu, limits.max_connections) reached; accepting paused until "
               "a connection closes (%llu time(s) so far)",
               max, (unsigned long long)n);
    pause_listener(a, lst, false);
    return false;
  }
  if (!fds_available(sh)) {
    uint64_t n = retry ? atomic_load(&sh->fd_pauses) : atomic_fetch_add(&sh->fd_pauses, 1) + 1;
    slot_give(sh);
    if (ratelog_due(&sh->fd_log))
      log_diag(LOG_WARN, 0,
               "out of file descriptors (%zu connections open); accepting on %s paused until "
               "descriptors free up (%llu time(s) so far); raise the limit (ulimit -n)",
               atomic_load(&sh->nconns), lst->name, (unsigned long long)n);
    pause_listener(a, lst, true);
    return false;
  }
  return true;
}

/* Accepts with the slot may_accept took. A connection that was never made
 * (the accept ran out of memory before it existed: nothing was counted,
 * nothing released) gives the slot back. */
static void accept_now(struct admit *a, struct listener *lst) {
  uint64_t releases = a->releases;
  size_t before = a->srv->nconns;
  a->srv->clients->accept(lst);
  if (a->srv->nconns == before && a->releases == releases)
    slot_give(a->shared);
}

void admit_accept(struct admit *a, struct listener *lst) {
  server_sync(a->srv); /* a reload just made: this connection is served under it */
  if (may_accept(a, lst, false))
    accept_now(a, lst);
}

void admit_note_error(struct admit *a, int err) {
  uint64_t n;
  if ((err != UV_EMFILE && err != UV_ENFILE) || a->shared == NULL)
    return;
  n = atomic_fetch_add(&a->shared->fd_pauses, 1) + 1;
  if (ratelog_due(&a->shared->fd_log))
    log_diag(LOG_WARN, 0,
             "out of file descriptors (%zu connections open): cannot open a connection to a "
             "destination: %s (%llu time(s) so far); raise the limit (ulimit -n)",
             atomic_load(&a->shared->nconns), uv_strerror(err), (unsigned long long)n);
}

/* Resumes every paused listener of this worker: each accepts its pending
 * connection, or pauses again. */
static void resume_all(struct admit *a) {
  struct server *srv = a->srv;
  size_t i;
  server_sync(srv);
  for (i = 0; i < srv->nlisteners && !a->closing && !srv->stopping; i++) {
    struct listener *lst = &srv->listeners[i];
    if (!lst->paused)
      continue;
    lst->paused = false;
    atomic_fetch_sub(&a->shared->npaused, 1);
    if (!may_accept(a, lst, true))
      continue;
    if (ratelog_due(&a->shared->resume_log))
      log_diag(LOG_INFO, 0, "accepting on %s again", lst->name);
    accept_now(a, lst);
  }
}

static void on_retry(uv_timer_t *t) {
  resume_all(t->data);
}

void admit_retry(struct admit *a) {
  if (!a->closing && !a->srv->stopping)
    uv_timer_start(&a->retry, on_retry, 0, 0);
}

/* The table key of PEER: family, then the IPv4 address or the IPv6 /64 (a
 * machine may use any address of its /64). False for other families. */
static bool client_key(const struct sockaddr *peer, uint8_t key[17]) {
  struct sockaddr_in tmp;
  memset(key, 0, 17);
  if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
    return false;
  peer = sockaddr_unmapped(peer, &tmp);
  key[0] = (uint8_t)peer->sa_family;
  if (peer->sa_family == AF_INET)
    memcpy(key + 1, &((const struct sockaddr_in *)peer)->sin_addr, 4);
  else
    memcpy(key + 1, &((const struct sockaddr_in6 *)peer)->sin6_addr, 8);
  return true;
}

static size_t key_hash(const uint8_t key[17], size_t nbuckets) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  size_t i;
  for (i = 0; i < 17; i++)
    h = (h ^ key[i]) * 1099511628211ULL;
  return (size_t)(h % nbuckets);
}

/* Where the entry for KEY is or would be linked in its bucket. */
static struct admit_client **find(struct admit_shared *sh, const uint8_t key[17]) {
  struct admit_client **p = &sh->table[key_hash(key, sh->nbuckets)];
  while (*p != NULL && memcmp((*p)->key, key, 17) != 0)
    p = &(*p)->next;
  return p;
}

/* Adds one connection to KEY's count under the lock: its new count, or 0
 * when out of memory (then counted nowhere: admit_release finds nothing). */
static size_t client_count_add(struct admit_shared *sh, const uint8_t key[17]) {
  struct admit_client **p, *e;
  size_t n = 0;
  uv_mutex_lock(&sh->mu);
  p = find(sh, key);
  if ((e = *p) == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
    memcpy(e->key, key, sizeof(e->key));
    *p = e;
  }
  if (e != NULL)
    n = ++e->conns;
  uv_mutex_unlock(&sh->mu);
  return n;
}

int admit_client_add(struct admit *a, const struct sockaddr *peer) {
  struct admit_shared *sh = a->shared;
  size_t cap = a->srv->cfg->limits.max_connections_per_client, n;
  uint64_t refused;
  uint8_t key[17];
  char ip[64];

  if (!client_key(peer, key))
    return 0;
  if ((n = client_count_add(sh, key)) == 0)
    return UV_ENOMEM;
  if (n <= cap)
    return 0;
  refused = atomic_fetch_add(&sh->client_refusals, 1) + 1;
  if (ratelog_due(&sh->client_log))
    log_diag(LOG_WARN, 0,
             "client %s holds %zu connections (limits.max_connections_per_client); refusing "
             "more (%llu refused so far)",
             log_fmt_ip(peer, ip, sizeof(ip)), cap, (unsigned long long)refused);
  return UV_EBUSY;
}

void admit_release(struct admit *a, const struct sockaddr *peer) {
  struct admit_shared *sh = a->shared;
  struct admit_client **p, *e;
  uint8_t key[17];

  if (client_key(peer, key)) {
    uv_mutex_lock(&sh->mu);
    if ((e = *(p = find(sh, key))) != NULL && --e->conns == 0) {
      *p = e->next;
      free(e);
    }
    uv_mutex_unlock(&sh->mu);
  }
  slot_give(sh);
  a->releases++;
  if (a->closing || a->srv->stopping || atomic_load(&sh->npaused) == 0)
    return;
  /* A slot (and descriptors) just freed: let paused listeners, on any
   * worker, try now, from their loops rather than from inside a close. */
  if (sh->wake != NULL)
    sh->wake(sh->wake_arg);
  else
    admit_retry(a);
}
