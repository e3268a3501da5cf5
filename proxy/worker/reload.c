/* Reloading: a whole new configuration and snapshot are built on the main
 * thread; on success it is put in force for every worker (each picks it up
 * before its next accept or request), settings that cannot change live keep
 * their running values, and the replaced configuration is kept by each
 * worker until the connections that may read it have gone. */
#include "proxy/worker/reload.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/policy.h"
#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/worker/server.h"

/* Settings bound at start-up: sockets (and their firewall mark), the
 * resolver and its cache, the internal-address table, the block-page CA and
 * its leaf cache, the log writer, the admin endpoint. */
static const struct restart_field {
  const char *key;
  size_t offset, size;
} restart_fields[] = {
#define FIELD(key, member)                                                                         \
  { key, offsetof(struct config, member), sizeof(((struct config *)0)->member) }
    FIELD("listen", nlisten),
    FIELD("listen", listen),
    FIELD("resolvers", resolvers),
    FIELD("timeouts.resolve", timeouts.resolve),
    FIELD("dns", dns),
    FIELD("internal.allow", internal_allow_text),
    FIELD("mark", mark),
    FIELD("user", user),
    FIELD("certs.ca_dir", certs.ca_dir), /* not certs.ca: each configuration owns its own */
    FIELD("certs.cache_entries", certs.cache_entries),
    FIELD("log", log_path),
    FIELD("log_buffer", log_buffer),
    FIELD("workers", workers),
    FIELD("admin.listen", admin.enabled),
    FIELD("admin.listen", admin.listen_text),
    FIELD("admin.token_file", admin.token),
    FIELD("admin.names", admin.names),
#undef FIELD
};

/* Puts the running value of every restart-only setting back into NEXT,
 * with a warning for each one the file changed. */
static void keep_restart_only(const struct config *running, struct config *next) {
  const char *last = "";
  for (size_t i = 0; i < sizeof(restart_fields) / sizeof(restart_fields[0]); i++) {
    const struct restart_field *f = &restart_fields[i];
    const char *was = (const char *)running + f->offset;
    char *now = (char *)next + f->offset;
    if (memcmp(was, now, f->size) == 0)
      continue;
    if (strcmp(last, f->key) != 0)
      log_diag(LOG_WARN, 0, "reload: %s changed, which needs a restart; keeping the running value",
               f->key);
    last = f->key;
    memcpy(now, was, f->size);
  }
  /* Copied whole with the fields above; these go with them. */
  memcpy(&next->admin, &running->admin, sizeof(next->admin));
}

/* A configuration a worker replaced, kept while a connection it accepted
 * under it lives. */
struct server_retired {
  struct server_config *holder; /* a reference */
  uint64_t last_conn_id;        /* the newest connection of the worker that may read it */
  struct server_retired *next;
};

void server_config_unref(struct server_config *h) {
  if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1)
    return;
  config_free(&h->cfg);
  free(h);
}

static struct server_config *holder_ref(struct server_config *h) {
  if (h != NULL)
    atomic_fetch_add(&h->refs, 1);
  return h;
}

int server_reload(struct server_shared *sh, server_load_fn load, const void *load_arg, char *err,
                  size_t errsize) {
  struct server_config *h, *old;
  const struct policy *was = sh->cfg->policy;
  int rc;

  if ((h = calloc(1, sizeof(*h))) == NULL) {
    snprintf(err, errsize, "out of memory");
    return -ENOMEM;
  }
  atomic_init(&h->refs, 1);
  if ((rc = load(load_arg, &h->cfg, err, errsize)) != 0) {
    free(h);
    metrics_add(METRIC_RELOAD_FAILED, 1);
    log_diag(LOG_ERR, 0, "reload rejected, policy %s stays in force: %s", policy_version(was), err);
    return rc;
  }
  keep_restart_only(sh->cfg, &h->cfg);
  /* Workers look at the generation before each accept and each request,
   * so from here on nothing new is served under the old configuration. */
  uv_mutex_lock(&sh->mu);
  old = sh->holder;
  sh->holder = h;
  sh->cfg = &h->cfg;
  atomic_fetch_add_explicit(&sh->generation, 1, memory_order_release);
  uv_mutex_unlock(&sh->mu);
  log_diag(LOG_INFO, 0,
           "reloaded %s: policy %s (was %s): %zu vendor list(s), %zu host rule(s), %zu "
           "exception(s)%s",
           h->cfg.source, policy_version(h->cfg.policy), policy_version(was),
           policy_vendor_count(h->cfg.policy), policy_host_count(h->cfg.policy),
           policy_exception_count(h->cfg.policy),
           policy_monitor(h->cfg.policy) ? ", monitor mode (nothing is denied)" : "");
  server_config_unref(old); /* workers that still use it hold their own references */
  metrics_add(METRIC_RELOAD_OK, 1);
  snprintf(err, errsize, "policy %s", policy_version(h->cfg.policy));
  return 0;
}

/* Puts the configuration this worker served with aside: the connections
 * it accepted so far may still read it. The start-up one belongs to the
 * process. False when out of memory (the worker then keeps it in force
 * and tries again later). */
static bool retire_current(struct server *srv) {
  struct server_retired *r;
  if (srv->current == NULL)
    return true;
  if ((r = calloc(1, sizeof(*r))) == NULL)
    return false;
  r->holder = srv->current;
  r->last_conn_id = srv->last_conn_id;
  r->next = srv->retired;
  srv->retired = r;
  srv->current = NULL;
  return true;
}

void server_sync(struct server *srv) {
  struct server_shared *sh = srv->shared;
  struct policy *old;
  if (atomic_load_explicit(&sh->generation, memory_order_acquire) == srv->generation ||
      !retire_current(srv))
    return;
  uv_mutex_lock(&sh->mu);
  srv->current = holder_ref(sh->holder);
  srv->cfg = sh->cfg;
  srv->generation = atomic_load_explicit(&sh->generation, memory_order_relaxed);
  uv_mutex_unlock(&sh->mu);
  old = srv->policy;
  srv->policy = policy_ref(srv->cfg->policy);
  policy_unref(old);
}

void server_config_sweep(struct server *srv) {
  uint64_t oldest;
  struct server_retired **link = &srv->retired;
  if (srv->retired == NULL)
    return;
  oldest = srv->clients->oldest(srv);
  while (*link != NULL) {
    struct server_retired *r = *link;
    if (r->last_conn_id < oldest) {
      *link = r->next;
      server_config_unref(r->holder);
      free(r);
    } else {
      link = &r->next;
    }
  }
}

void server_config_free_all(struct server *srv) {
  while (srv->retired != NULL) {
    struct server_retired *r = srv->retired;
    srv->retired = r->next;
    server_config_unref(r->holder);
    free(r);
  }
  server_config_unref(srv->current);
  srv->current = NULL;
}
