/* The server: listeners, signals, the policy clock, and orderly shutdown. */
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
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/upstream.h"

#ifndef EMBARGO_VERSION
#define EMBARGO_VERSION "0.0.0"
#endif

static void on_signal(uv_signal_t *h, int signum) {
  struct server *srv = h->data;
  log_diag(LOG_INFO, 0, "received signal %d; shutting down", signum);
  server_stop(srv);
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
                char *err, size_t errsize) {
  size_t i;
  int rc;

  struct dnscache_limits cache = {.min_ttl_ms = cfg->dns.min_ttl,
                                  .max_ttl_ms = cfg->dns.max_ttl,
                                  .negative_ttl_ms = cfg->dns.negative_ttl,
                                  .max_entries = cfg->dns.cache_entries,
                                  .max_bytes = cfg->dns.cache_memory};

  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->cfg = cfg;
  srv->policy = policy_ref(cfg->policy);
  via_init(srv);
  if (now_override != 0)
    srv->clock_offset = now_override - (int64_t)time(NULL);
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
  uv_signal_init(loop, &srv->sigint);
  uv_signal_init(loop, &srv->sigterm);
  srv->sigint.data = srv->sigterm.data = srv;
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  return 0;
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
  if (srv->sigint.loop != NULL && !uv_is_closing((uv_handle_t *)&srv->sigint)) {
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
  }
}

int server_run(struct server *srv) {
  size_t i;
  for (i = 0; i < srv->nlisteners; i++)
    log_diag(LOG_INFO, 0, "listening on %s (%s)", srv->listeners[i].name,
             listen_mode_name((enum listen_mode)srv->listeners[i].mode));
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
}

int64_t server_now(const struct server *srv) {
  return (int64_t)time(NULL) + srv->clock_offset;
}
