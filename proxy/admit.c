/* Admission of client connections: connection limit, per-client cap,
 * descriptor exhaustion. See admit.h for the contract. */
#include "proxy/admit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/conn.h"
#include "proxy/dns.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/server.h"

#define FD_HEADROOM 2     /* descriptors a new connection may still need: its upstream, one more accept */
#define FD_RETRY_MS 250   /* retry period while descriptors are exhausted */
#define RATELOG_MS 1000
#define NBUCKETS 1024

struct admit_client {
  struct admit_client *next;
  uint8_t key[17];        /* family, then 4 (IPv4) or 8 (IPv6 /64) address bytes */
  size_t conns;
};

/* Whether the warning may be written now (at most once a second). */
static bool ratelog_due(struct ratelog *r, uint64_t now) {
  if (r->last_ms != 0 && now - r->last_ms < RATELOG_MS)
    return false;
  r->last_ms = now == 0 ? 1 : now;
  return true;
}

int admit_init(struct admit *a, struct server *srv) {
  memset(a, 0, sizeof(*a));
  a->srv = srv;
  a->probe_fd = -1;
  uv_timer_init(srv->loop, &a->retry);
  a->retry.data = a;
  if ((a->table = calloc(NBUCKETS, sizeof(a->table[0]))) == NULL)
    return UV_ENOMEM;
  a->nbuckets = NBUCKETS;
  if ((a->probe_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    return -errno;
  return 0;
}

void admit_close(struct admit *a) {
  if (a->closing)
    return;
  a->closing = true;
  if (a->retry.loop != NULL && !uv_is_closing((uv_handle_t *)&a->retry))
    uv_close((uv_handle_t *)&a->retry, NULL);
  if (a->fd_pauses + a->limit_pauses + a->client_refusals > 0)
    log_diag(LOG_INFO, 0,
             "admission: out of descriptors %llu time(s), accepting paused %llu time(s) at the "
             "connection limit; %llu connection(s) refused at the per-client cap",
             (unsigned long long)a->fd_pauses, (unsigned long long)a->limit_pauses,
             (unsigned long long)a->client_refusals);
}

void admit_free(struct admit *a) {
  size_t i;
  if (a == NULL || a->srv == NULL)
    return; /* never initialised (or already freed) */
  for (i = 0; a->table != NULL && i < a->nbuckets; i++) {
    while (a->table[i] != NULL) {
      struct admit_client *e = a->table[i];
      a->table[i] = e->next;
      free(e);
    }
  }
  free(a->table);
  a->table = NULL;
  if (a->probe_fd >= 0)
    close(a->probe_fd);
  a->probe_fd = -1;
  a->srv = NULL;
}

/* Whether FD_HEADROOM more descriptors can be opened right now. */
static bool fds_available(const struct admit *a) {
  int fds[FD_HEADROOM], n, i;
  bool ok = true;
  if (a->probe_fd < 0)
    return true; /* cannot measure: let accept() tell */
  for (n = 0; n < FD_HEADROOM; n++) {
    if ((fds[n] = fcntl(a->probe_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
      ok = errno != EMFILE && errno != ENFILE;
      break;
    }
  }
  for (i = 0; i < n; i++)
    close(fds[i]);
  return ok;
}

static void on_retry(uv_timer_t *t);

static void pause_listener(struct admit *a, struct listener *lst, bool fds) {
  lst->paused = true;
  /* Descriptors may be freed by anything (an idle upstream closing), so
   * retry on a timer; a connection slot frees only when one closes. */
  if (fds && !a->closing)
    uv_timer_start(&a->retry, on_retry, FD_RETRY_MS, 0);
}

/* The checks of admit_may_accept; RETRY: LST was paused already, so a
 * failure continues that pause rather than counting a new one. */
static bool may_accept(struct admit *a, struct listener *lst, bool retry) {
  const struct server *srv = a->srv;
  uint64_t now = uv_now(srv->loop);

  if (srv->nconns >= srv->cfg->limits.max_connections) {
    a->limit_pauses += !retry;
    if (ratelog_due(&a->limit_log, now))
      log_diag(LOG_WARN, 0,
               "connection limit (%zu, limits.max_connections) reached; accepting paused until "
               "a connection closes (%llu time(s) so far)",
               srv->cfg->limits.max_connections, (unsigned long long)a->limit_pauses);
    pause_listener(a, lst, false);
    return false;
  }
  if (!fds_available(a)) {
    a->fd_pauses += !retry;
    if (ratelog_due(&a->fd_log, now))
      log_diag(LOG_WARN, 0,
               "out of file descriptors (%zu connections open); accepting on %s paused until "
               "descriptors free up (%llu time(s) so far); raise the limit (ulimit -n)",
               srv->nconns, lst->name, (unsigned long long)a->fd_pauses);
    pause_listener(a, lst, true);
    return false;
  }
  return true;
}

bool admit_may_accept(struct admit *a, struct listener *lst) {
  return may_accept(a, lst, false);
}

void admit_note_error(struct admit *a, int err) {
  if ((err != UV_EMFILE && err != UV_ENFILE) || a->srv == NULL)
    return;
  a->fd_pauses++;
  if (ratelog_due(&a->fd_log, uv_now(a->srv->loop)))
    log_diag(LOG_WARN, 0,
             "out of file descriptors (%zu connections open): cannot open a connection to a "
             "destination: %s (%llu time(s) so far); raise the limit (ulimit -n)",
             a->srv->nconns, uv_strerror(err), (unsigned long long)a->fd_pauses);
}

/* Resumes every paused listener: each accepts its pending connection, or
 * pauses again. */
static void resume_all(struct admit *a) {
  struct server *srv = a->srv;
  size_t i;
  for (i = 0; i < srv->nlisteners && !a->closing && !srv->stopping; i++) {
    struct listener *lst = &srv->listeners[i];
    if (!lst->paused)
      continue;
    lst->paused = false;
    if (!may_accept(a, lst, true))
      continue;
    if (ratelog_due(&a->resume_log, uv_now(srv->loop)))
      log_diag(LOG_INFO, 0, "accepting on %s again", lst->name);
    conn_accept(lst);
  }
}

static void on_retry(uv_timer_t *t) {
  resume_all(t->data);
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
static struct admit_client **find(struct admit *a, const uint8_t key[17]) {
  struct admit_client **p = &a->table[key_hash(key, a->nbuckets)];
  while (*p != NULL && memcmp((*p)->key, key, 17) != 0)
    p = &(*p)->next;
  return p;
}

int admit_client_add(struct admit *a, const struct sockaddr *peer) {
  const struct server *srv = a->srv;
  struct admit_client **p, *e;
  uint8_t key[17];
  char ip[64];

  if (!client_key(peer, key))
    return 0;
  p = find(a, key);
  if ((e = *p) == NULL) {
    if ((e = calloc(1, sizeof(*e))) == NULL)
      return UV_ENOMEM; /* counted nowhere: admit_release finds nothing */
    memcpy(e->key, key, sizeof(key));
    *p = e;
  }
  if (++e->conns <= srv->cfg->limits.max_connections_per_client)
    return 0;
  a->client_refusals++;
  if (ratelog_due(&a->client_log, uv_now(srv->loop)))
    log_diag(LOG_WARN, 0,
             "client %s holds %zu connections (limits.max_connections_per_client); refusing "
             "more (%llu refused so far)",
             log_fmt_ip(peer, ip, sizeof(ip)), srv->cfg->limits.max_connections_per_client,
             (unsigned long long)a->client_refusals);
  return UV_EBUSY;
}

void admit_release(struct admit *a, const struct sockaddr *peer) {
  const struct server *srv = a->srv;
  struct admit_client **p, *e;
  uint8_t key[17];
  size_t i;
  if (client_key(peer, key) && (e = *(p = find(a, key))) != NULL && --e->conns == 0) {
    *p = e->next;
    free(e);
  }
  if (a->closing || srv->stopping)
    return;
  /* A slot (and descriptors) just freed: let paused listeners try now,
   * from the loop rather than from inside a close. */
  for (i = 0; i < srv->nlisteners; i++) {
    if (srv->listeners[i].paused) {
      uv_timer_start(&a->retry, on_retry, 0, 0);
      return;
    }
  }
}
