/* The server: listeners, signals, the policy clock, and orderly shutdown
 * (stop accepting, let connections in flight finish, then close). */
#include "proxy/server.h"

#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "filters/policy.h"
#include "proxy/bump.h"
#include "proxy/conn.h"
#include "proxy/conn-t.h"
#include "proxy/dns.h"
#include "proxy/dnscache.h"
#include "filters/err.h"
#include "proxy/admin.h"
#include "proxy/http1.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/reload.h"
#include "proxy/upstream.h"

#ifndef EMBARGO_VERSION
#define EMBARGO_VERSION "0.0.0"
#endif

#define TICK_MS 50 /* housekeeping period: how soon a drained connection is noticed */

static void on_stop_signal(uv_signal_t *h, int signum) {
  struct server *srv = h->data;
  if (srv->draining) {
    log_diag(LOG_INFO, 0, "received signal %d again; closing %zu connection(s) now", signum,
             srv->nconns);
    server_stop(srv);
    return;
  }
  log_diag(LOG_INFO, 0, "received signal %d; shutting down", signum);
  server_drain(srv);
}

static void on_reload_signal(uv_signal_t *h, int signum) {
  char err[600];
  (void)signum;
  server_reload(h->data, err, sizeof(err));
}

static void on_reopen_signal(uv_signal_t *h, int signum) {
  int rc = log_reopen();
  (void)h;
  (void)signum;
  if (rc != 0)
    log_diag(LOG_ERR, 0, "cannot reopen the log %s: %s; still writing to the old file",
             log_destination(), uv_strerror(rc));
  else if (strcmp(log_destination(), "-") == 0 || strcmp(log_destination(), "syslog") == 0)
    log_diag(LOG_INFO, 0, "SIGUSR1: the log goes to %s, nothing to reopen",
             strcmp(log_destination(), "-") == 0 ? "standard output" : "syslog");
  else
    log_diag(LOG_INFO, 0, "log %s reopened", log_destination());
}

/* A connection between requests: nothing read of the next one, nothing
 * owed. Closing it loses nothing. */
static bool conn_idle(const struct conn *c) {
  return c->state == CONN_ST_HEAD && c->ex->spill_len == 0 && !http1_in_message(c->ex->req);
}

static void on_tick(uv_timer_t *t) {
  struct server *srv = t->data;
  server_config_sweep(srv);
  if (!srv->draining || srv->stopping)
    return;
  for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
    next = c->next;
    if (conn_idle(c))
      conn_close(c);
  }
  if (srv->conns == NULL) {
    log_diag(LOG_INFO, 0, "every connection has finished; exiting");
    server_stop(srv);
  }
}

static void on_grace_over(uv_timer_t *t) {
  struct server *srv = t->data;
  log_diag(LOG_WARN, 0, "shutdown_grace (%llums) is over; closing %zu connection(s)",
           (unsigned long long)srv->cfg->timeouts.shutdown_grace, srv->nconns);
  server_stop(srv);
}

static void signals_start(struct server *srv) {
  uv_signal_t *sigs[] = {&srv->sigint, &srv->sigterm, &srv->sighup, &srv->sigusr1};
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
    uv_signal_init(srv->loop, sigs[i]);
    sigs[i]->data = srv;
  }
  uv_signal_start(&srv->sigint, on_stop_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_stop_signal, SIGTERM);
  uv_signal_start(&srv->sighup, on_reload_signal, SIGHUP);
  uv_signal_start(&srv->sigusr1, on_reopen_signal, SIGUSR1);
  uv_timer_init(srv->loop, &srv->tick);
  uv_timer_init(srv->loop, &srv->grace);
  srv->tick.data = srv->grace.data = srv;
  uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS);
  srv->handles_open = true;
}

static void handles_close(struct server *srv) {
  uv_handle_t *hs[] = {(uv_handle_t *)&srv->sigint, (uv_handle_t *)&srv->sigterm,
                       (uv_handle_t *)&srv->sighup, (uv_handle_t *)&srv->sigusr1,
                       (uv_handle_t *)&srv->tick,   (uv_handle_t *)&srv->grace};
  if (!srv->handles_open)
    return;
  srv->handles_open = false;
  for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
    uv_close(hs[i], NULL);
}

/* Via's received-by names this host, so a request that comes back through
 * the same proxy is recognised, while a chain of different Embargo
 * instances (sidecar, then egress) is not mistaken for a loop. */
static void via_init(struct server *srv) {
  char host[64] = "";
  size_t i, n = 0;
  gethostname(host, sizeof(host) - 1);
  for (i = 0; host[i] != '\0' && n + 1 < sizeof(srv->via_host); i++)
    if (isalnum((unsigned char)host[i]) || strchr("-._", host[i]) != NULL)
      srv->via_host[n++] = host[i];
  srv->via_host[n] = '\0';
  if (n == 0)
    snprintf(srv->via_host, sizeof(srv->via_host), "embargo-%08x", (unsigned)getpid());
  snprintf(srv->via, sizeof(srv->via), "%s (embargo/%s)", srv->via_host, EMBARGO_VERSION);
}

int server_init(struct server *srv, uv_loop_t *loop, struct config *cfg, int64_t now_override,
                server_load_fn load, const void *load_arg, char *err, size_t errsize) {
  size_t i;
  int rc;

  struct dnscache_limits cache = {.min_ttl_ms = cfg->dns.min_ttl,
                                  .max_ttl_ms = cfg->dns.max_ttl,
                                  .negative_ttl_ms = cfg->dns.negative_ttl,
                                  .max_entries = cfg->dns.cache_entries,
                                  .max_bytes = cfg->dns.cache_memory};

  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->cfg = srv->boot_cfg = cfg;
  srv->load = load;
  srv->load_arg = load_arg;
  srv->policy = policy_ref(cfg->policy);
  via_init(srv);
  if (now_override != 0)
    srv->clock_offset = now_override - (int64_t)time(NULL);
  srv->policy_loaded_at = server_now(srv);
  if ((rc = destcheck_init(&srv->dest, cfg->internal_allow)) != 0) {
    snprintf(err, errsize, "cannot build the internal address table");
    return rc;
  }
  if (cfg->mark != 0 && (rc = upstream_check_mark(cfg->mark)) != 0) {
    snprintf(err, errsize, "mark: cannot set SO_MARK %u on outgoing connections: %s%s", cfg->mark,
             uv_strerror(rc), rc == UV_EPERM ? " (needs CAP_NET_ADMIN)" : "");
    return rc;
  }
  if ((rc = admit_init(&srv->admit, srv)) != 0) {
    snprintf(err, errsize, "cannot set up connection admission: %s", uv_strerror(rc));
    return rc;
  }
  rc = resolver_new(loop, cfg->resolvers, cfg->timeouts.resolve, &cache, &srv->resolver, err,
                    errsize);
  if (rc != 0 || (rc = bump_ctx_new(cfg, &srv->bump, err, errsize)) != 0)
    return rc;
  for (i = 0; i < cfg->nlisten; i++) {
    srv->nlisteners++; /* counted now so shutdown closes the handle whatever happens */
    if ((rc = listener_open(srv, &srv->listeners[i], &cfg->listen[i], err, errsize)) != 0)
      return rc;
    destcheck_add_self(&srv->dest, (const struct sockaddr *)&srv->listeners[i].addr);
  }
  signals_start(srv);
  if (cfg->admin.enabled) {
    for (i = 0; i < cfg->nlisten; i++) {
      if (config_same_socket((const struct sockaddr *)&cfg->admin.listen,
                             (const struct sockaddr *)&cfg->listen[i].addr)) {
        snprintf(err, errsize, "admin.listen %s is the proxy listener %s", cfg->admin.listen_text,
                 cfg->listen[i].text);
        return EMB_ECONFIG;
      }
    }
    rc = admin_open(srv, &srv->admin, err, errsize);
    if (rc != 0)
      return rc;
    /* The endpoint is not a destination: a request to it through the proxy
     * is refused like one to the proxy itself. */
    destcheck_add_self(&srv->dest, admin_address(srv->admin));
  }
  return 0;
}

void server_drain(struct server *srv) {
  size_t i;
  if (srv->stopping)
    return;
  if (srv->draining) {
    server_stop(srv);
    return;
  }
  srv->draining = true;
  admit_close(&srv->admit); /* no listener is resumed once it is closed */
  for (i = 0; i < srv->nlisteners; i++)
    listener_close(&srv->listeners[i]);
  upstream_pool_clear(srv);
  log_diag(LOG_INFO, 0,
           "stopped accepting; %zu connection(s) may finish within %llums (a second signal "
           "ends them now)",
           srv->nconns, (unsigned long long)srv->cfg->timeouts.shutdown_grace);
  uv_timer_start(&srv->grace, on_grace_over, srv->cfg->timeouts.shutdown_grace, 0);
  on_tick(&srv->tick);
}

void server_stop(struct server *srv) {
  size_t i;
  if (srv->stopping)
    return;
  srv->stopping = true;
  if (srv->bump != NULL)
    bump_ctx_log_stats(srv->bump, srv->cfg->certs.cache_entries);
  for (i = 0; i < srv->nlisteners; i++)
    listener_close(&srv->listeners[i]);
  while (srv->conns != NULL)
    conn_close(srv->conns);
  upstream_pool_clear(srv);
  admit_close(&srv->admit);
  resolver_close(srv->resolver);
  srv->resolver = NULL;
  admin_close(srv->admin);
  srv->admin = NULL;
  handles_close(srv);
}

int server_run(struct server *srv) {
  size_t i;
  for (i = 0; i < srv->nlisteners; i++)
    log_diag(LOG_INFO, 0, "listening on %s (%s)", srv->listeners[i].name,
             listen_mode_name((enum listen_mode)srv->listeners[i].mode));
  if (srv->admin != NULL)
    log_diag(LOG_INFO, 0, "admin endpoint on %s", srv->cfg->admin.listen_text);
  uv_run(srv->loop, UV_RUN_DEFAULT);
  server_stop(srv);
  uv_run(srv->loop, UV_RUN_DEFAULT); /* let close callbacks run */
  return 0;
}

void server_free(struct server *srv) {
  bump_ctx_free(srv->bump);
  srv->bump = NULL;
  policy_unref(srv->policy);
  srv->policy = NULL;
  destcheck_free(&srv->dest);
  admit_free(&srv->admit);
  server_config_free_all(srv);
  srv->cfg = srv->boot_cfg;
}

void server_request_start(struct conn *c) {
  struct server *srv = c->srv;
  if (c->policy != srv->policy) {
    policy_unref(c->policy);
    c->policy = policy_ref(srv->policy);
  }
  metrics_add(c->ex->head != NULL && c->ex->head->is_connect ? METRIC_REQ_CONNECT : METRIC_REQ_FORWARD, 1);
}

int64_t server_now(const struct server *srv) {
  return (int64_t)time(NULL) + srv->clock_offset;
}
