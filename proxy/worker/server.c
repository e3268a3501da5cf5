/* The server: one worker's loop, listeners, the policy clock, commands
 * from the main thread, and orderly shutdown (stop accepting, let
 * connections in flight finish, then close). */
#include "proxy/worker/server.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certs/blockpage.h"
#include "filters/err.h"
#include "filters/policy.h"
#include "proxy/base/dns.h"
#include "proxy/base/dnscache.h"
#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/base/offload.h"
#include "proxy/worker/listener.h"
#include "proxy/worker/reload.h"
#include "proxy/worker/upstream.h"

#ifndef EMBARGO_VERSION
#define EMBARGO_VERSION "0.0.0"
#endif

#define TICK_MS             50 /* housekeeping period: how soon a drained connection is noticed */
#define OFFLOAD_NICE        10 /* the block page's threads, below the loops */
#define OFFLOAD_MAX_THREADS 4  /* at most, and at most one per CPU */

/* Via's received-by names this host, so a request that comes back through
 * the same proxy is recognised, while a chain of different Embargo
 * instances (sidecar, then egress) is not mistaken for a loop. */
static void via_init(struct server_shared *sh) {
  char host[64] = "";
  size_t i, n = 0;
  gethostname(host, sizeof(host) - 1);
  for (i = 0; host[i] != '\0' && n + 1 < sizeof(sh->via_host); i++)
    if (isalnum((unsigned char)host[i]) || strchr("-._", host[i]) != NULL)
      sh->via_host[n++] = host[i];
  sh->via_host[n] = '\0';
  if (n == 0)
    snprintf(sh->via_host, sizeof(sh->via_host), "embargo-%08x", (unsigned)getpid());
  snprintf(sh->via, sizeof(sh->via), "%s (embargo/%s)", sh->via_host, EMBARGO_VERSION);
}

/* The block page's threads: one per CPU, at most OFFLOAD_MAX_THREADS. */
static size_t offload_nthreads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > OFFLOAD_MAX_THREADS ? OFFLOAD_MAX_THREADS : (size_t)n;
}

int server_shared_init(struct server_shared *sh, struct config *cfg, size_t nworkers,
                       int64_t now_override, void (*wake)(void *arg), void *wake_arg, char *err,
                       size_t errsize) {
  struct dnscache_limits cache = {.min_ttl_ms = cfg->dns.min_ttl,
                                  .max_ttl_ms = cfg->dns.max_ttl,
                                  .negative_ttl_ms = cfg->dns.negative_ttl,
                                  .max_entries = cfg->dns.cache_entries,
                                  .max_bytes = cfg->dns.cache_memory};
  int rc;
  memset(sh, 0, sizeof(*sh));
  sh->cfg = cfg;
  sh->nworkers = nworkers;
  via_init(sh);
  if (now_override != 0)
    sh->clock_offset = now_override - (int64_t)time(NULL);
  if (uv_mutex_init(&sh->mu) != 0) {
    snprintf(err, errsize, "cannot create a lock");
    return UV_ENOMEM;
  }
  sh->mu_ready = true;
  if ((rc = admit_shared_init(&sh->admit, wake, wake_arg)) != 0) {
    snprintf(err, errsize, "cannot set up connection admission: %s", uv_strerror(rc));
    return rc;
  }
  if ((rc = resolver_cache_new(&cache, &sh->dns)) != 0) {
    snprintf(err, errsize, "DNS cache: %s", rc == -EINVAL ? "invalid limits" : "out of memory");
    return rc;
  }
  if (cfg->certs.ca != NULL &&
      (rc = blockpage_new(cfg->certs.ca, cfg->certs.cache_entries, &sh->blockpage)) != 0) {
    snprintf(err, errsize, "cannot set up the block page over TLS (OpenSSL)");
    return rc;
  }
  if (sh->blockpage != NULL &&
      (rc = offload_new(offload_nthreads(), OFFLOAD_NICE, &sh->offload)) != 0) {
    snprintf(err, errsize, "cannot start the block page's threads: %s", uv_strerror(rc));
    return rc;
  }
  return 0;
}

void server_shared_log(const struct server_shared *sh) {
  struct blockpage_stats bs;
  if (sh->blockpage != NULL) {
    blockpage_stats(sh->blockpage, &bs);
    log_diag(LOG_INFO, 0,
             "block-page certificates: %" PRIu64 " minted, %" PRIu64 " from the cache, %" PRIu64
             " evicted, %zu cached (bound %zu)",
             bs.minted, bs.hits, bs.evicted, bs.entries, sh->cfg->certs.cache_entries);
  }
  admit_shared_log(&sh->admit);
}

void server_shared_free(struct server_shared *sh) {
  offload_free(sh->offload); /* every loop's port is closed: the workers have ended */
  sh->offload = NULL;
  blockpage_free(sh->blockpage);
  sh->blockpage = NULL;
  resolver_cache_free(sh->dns);
  sh->dns = NULL;
  admit_shared_free(&sh->admit);
  server_config_unref(sh->holder);
  sh->holder = NULL;
  if (sh->mu_ready)
    uv_mutex_destroy(&sh->mu);
  sh->mu_ready = false;
}

static void on_tick(uv_timer_t *t) {
  struct server *srv = t->data;
  server_config_sweep(srv);
  slab_pool_trim(&srv->exchange_cells);
  slab_pool_trim(&srv->hello_cells);
  if (!srv->draining || srv->stopping)
    return;
  srv->clients->close(srv, true);
  if (srv->conns == NULL) {
    log_diag(LOG_DEBUG, 0, "worker %zu: every connection has finished", srv->index);
    server_stop(srv);
  }
}

static void on_wake(uv_async_t *h) {
  struct server *srv = h->data;
  unsigned cmd = atomic_exchange(&srv->commands, 0);
  if (cmd & SERVER_CMD_SYNC)
    server_sync(srv);
  if (cmd & SERVER_CMD_RETRY)
    admit_retry(&srv->admit);
  if (cmd & SERVER_CMD_REPORT && srv->report != NULL)
    srv->report(srv, srv->report_arg);
  if (cmd & SERVER_CMD_DRAIN)
    server_drain(srv);
  if (cmd & SERVER_CMD_STOP)
    server_stop(srv);
}

static void handles_start(struct server *srv) {
  uv_timer_init(srv->loop, &srv->tick);
  srv->tick.data = srv;
  uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS);
  uv_async_init(srv->loop, &srv->wake, on_wake);
  srv->wake.data = srv;
  srv->wake_open = true;
  srv->handles_open = true;
}

static void handles_close(struct server *srv) {
  if (!srv->handles_open)
    return;
  srv->handles_open = false;
  uv_mutex_lock(&srv->wake_mu);
  srv->wake_open = false; /* no thread sends to a closing handle */
  uv_mutex_unlock(&srv->wake_mu);
  uv_close((uv_handle_t *)&srv->tick, NULL);
  uv_close((uv_handle_t *)&srv->wake, NULL);
  offload_port_close(srv->offload); /* once the block page's steps have come back */
  srv->offload = NULL;
}

static int listeners_open(struct server *srv, const struct server *first, char *err,
                          size_t errsize) {
  const struct config *cfg = srv->cfg;
  int rc;
  for (size_t i = 0; i < cfg->nlisten; i++) {
    srv->nlisteners++; /* counted now so shutdown closes the handle whatever happens */
    rc = listener_open(srv, &srv->listeners[i], &cfg->listen[i],
                       first != NULL ? &first->listeners[i] : NULL, srv->shared->nworkers > 1, err,
                       errsize);
    if (rc != 0)
      return rc;
    destcheck_add_self(&srv->dest, (const struct sockaddr *)&srv->listeners[i].addr);
  }
  return 0;
}

int server_init(struct server *srv, uv_loop_t *loop, struct server_shared *sh, size_t index,
                const struct server *first, const struct server_clients *clients,
                const struct sockaddr *own_extra, char *err, size_t errsize) {
  const struct config *cfg = sh->cfg;
  int rc;

  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->shared = sh;
  srv->index = index;
  srv->clients = clients;
  srv->cfg = sh->cfg;
  srv->generation = atomic_load(&sh->generation);
  srv->policy = policy_ref(sh->cfg->policy);
  srv->blockpage = sh->blockpage;
  memcpy(srv->via_host, sh->via_host, sizeof(srv->via_host));
  memcpy(srv->via, sh->via, sizeof(srv->via));
  if (uv_mutex_init(&srv->wake_mu) != 0) {
    snprintf(err, errsize, "cannot create a lock");
    return UV_ENOMEM;
  }
  srv->wake_mu_ready = true;
  handles_start(srv);
  if (sh->offload != NULL && (rc = offload_port_new(loop, sh->offload, &srv->offload)) != 0) {
    snprintf(err, errsize, "cannot reach the block page's threads: %s", uv_strerror(rc));
    return rc;
  }
  admit_init(&srv->admit, srv, &sh->admit);
  if ((rc = destcheck_init(&srv->dest, cfg->internal_allow)) != 0) {
    snprintf(err, errsize, "cannot build the internal address table");
    return rc;
  }
  if (own_extra != NULL)
    destcheck_add_self(&srv->dest, own_extra);
  rc = resolver_new(loop, cfg->resolvers, cfg->timeouts.resolve, NULL, sh->dns, &srv->resolver, err,
                    errsize);
  if (rc != 0)
    return rc;
  return listeners_open(srv, first, err, errsize);
}

void server_drain(struct server *srv) {
  size_t i;
  if (srv->stopping || srv->draining)
    return;
  srv->draining = true;
  admit_close(&srv->admit); /* no listener is resumed once it is closed */
  for (i = 0; i < srv->nlisteners; i++)
    listener_close(&srv->listeners[i]);
  upstream_pool_clear(srv);
  log_diag(LOG_DEBUG, 0, "worker %zu: stopped accepting; %zu connection(s) in flight", srv->index,
           srv->nconns);
  on_tick(&srv->tick);
}

void server_stop(struct server *srv) {
  size_t i;
  if (srv->stopping)
    return;
  srv->stopping = true;
  for (i = 0; i < srv->nlisteners; i++)
    listener_close(&srv->listeners[i]);
  srv->clients->close(srv, false);
  upstream_pool_clear(srv);
  admit_close(&srv->admit);
  resolver_close(srv->resolver);
  srv->resolver = NULL;
  handles_close(srv);
}

void server_command(struct server *srv, unsigned cmd) {
  uv_mutex_lock(&srv->wake_mu);
  if (srv->wake_open) {
    atomic_fetch_or(&srv->commands, cmd);
    uv_async_send(&srv->wake);
  }
  uv_mutex_unlock(&srv->wake_mu);
}

void server_run(struct server *srv) {
  metrics_use_worker_shard(srv->index);
  uv_run(srv->loop, UV_RUN_DEFAULT);
  server_stop(srv);
  uv_run(srv->loop, UV_RUN_DEFAULT); /* let close callbacks run */
}

void server_free(struct server *srv) {
  slab_pool_free(&srv->exchange_cells);
  slab_pool_free(&srv->hello_cells);
  policy_unref(srv->policy);
  srv->policy = NULL;
  destcheck_free(&srv->dest);
  admit_free(&srv->admit);
  server_config_free_all(srv);
  if (srv->wake_mu_ready)
    uv_mutex_destroy(&srv->wake_mu);
  srv->wake_mu_ready = false;
}

void server_stats_read(const struct server *srv, struct server_stats *out) {
  struct resolver_health h;
  memset(out, 0, sizeof(*out));
  srv->clients->count(srv, out);
  for (size_t i = 0; i < srv->nlisteners && i < CONFIG_MAX_LISTEN; i++)
    out->accept_errors[i] = srv->listeners[i].accept_errors;
  if (srv->resolver != NULL) {
    resolver_stats(srv->resolver, &out->dns);
    resolver_get_health(srv->resolver, &h);
    out->dns_last_ok_ms = h.last_ok_ms;
    out->dns_last_fail_ms = h.last_fail_ms;
    out->dns_last_fail = (int)h.last_fail;
  }
  out->dial = srv->dial;
  out->generation = srv->generation;
}

uint64_t server_next_conn_id(struct server *srv) {
  srv->last_conn_id = atomic_fetch_add(&srv->shared->next_conn_id, 1) + 1;
  return srv->last_conn_id;
}

int64_t server_shared_now(const struct server_shared *sh) {
  return (int64_t)time(NULL) + sh->clock_offset;
}

int64_t server_now(const struct server *srv) {
  return server_shared_now(srv->shared);
}
