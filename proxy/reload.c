/* Reloading: a whole new configuration and snapshot are built; on success
 * the snapshot is swapped in for new requests, settings that cannot change
 * live keep their running values, and the replaced configuration is kept
 * until the connections that may read it have gone. */
#include "proxy/reload.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/policy.h"
#include "proxy/conn-t.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/server.h"

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

static struct server_config *config_holder_new(void) {
  return calloc(1, sizeof(struct server_config));
}

static void config_holder_free(struct server_config *h) {
  if (h == NULL)
    return;
  config_free(&h->cfg);
  free(h);
}

/* Puts the configuration in force aside: the connections accepted so far
 * may still read it. The start-up one belongs to the caller of server_init. */
static void retire_current(struct server *srv) {
  struct server_config *h = srv->current;
  if (h == NULL)
    return;
  h->last_conn_id = srv->next_conn_id;
  h->next = srv->retired;
  srv->retired = h;
  srv->current = NULL;
}

int server_reload(struct server *srv, char *err, size_t errsize) {
  struct server_config *h;
  struct policy *old;
  int rc;

  if (srv->load == NULL || srv->draining) {
    snprintf(err, errsize, "%s", srv->draining ? "shutting down" : "reloading is not available");
    return EMB_ECONFIG;
  }
  if ((h = config_holder_new()) == NULL) {
    snprintf(err, errsize, "out of memory");
    return -ENOMEM;
  }
  if ((rc = srv->load(srv->load_arg, &h->cfg, err, errsize)) != 0) {
    free(h);
    metrics_add(METRIC_RELOAD_FAILED, 1);
    snprintf(srv->reload_error, sizeof(srv->reload_error), "%s", err);
    log_diag(LOG_ERR, 0, "reload rejected, policy %s stays in force: %s",
             policy_version(srv->policy), err);
    return rc;
  }
  keep_restart_only(srv->cfg, &h->cfg);
  retire_current(srv);
  srv->current = h;
  srv->cfg = &h->cfg;
  old = srv->policy;
  srv->policy = policy_ref(h->cfg.policy);
  srv->policy_loaded_at = server_now(srv);
  srv->reload_error[0] = '\0';
  metrics_add(METRIC_RELOAD_OK, 1);
  log_diag(LOG_INFO, 0,
           "reloaded %s: policy %s (was %s): %zu vendor list(s), %zu host rule(s), %zu "
           "exception(s)%s",
           h->cfg.source, policy_version(srv->policy), policy_version(old),
           policy_vendor_count(srv->policy), policy_host_count(srv->policy),
           policy_exception_count(srv->policy),
           policy_monitor(srv->policy) ? ", monitor mode (nothing is denied)" : "");
  policy_unref(old);
  snprintf(err, errsize, "policy %s", policy_version(srv->policy));
  return 0;
}

void server_config_sweep(struct server *srv) {
  uint64_t oldest = UINT64_MAX;
  struct server_config **link = &srv->retired;
  if (srv->retired == NULL)
    return;
  for (const struct conn *c = srv->conns; c != NULL; c = c->next)
    if (c->id < oldest)
      oldest = c->id;
  while (*link != NULL) {
    struct server_config *h = *link;
    if (h->last_conn_id < oldest) {
      *link = h->next;
      config_holder_free(h);
    } else {
      link = &h->next;
    }
  }
}

void server_config_free_all(struct server *srv) {
  while (srv->retired != NULL) {
    struct server_config *h = srv->retired;
    srv->retired = h->next;
    config_holder_free(h);
  }
  config_holder_free(srv->current);
  srv->current = NULL;
}
