/* Liveness and readiness of the process, from the workers' reports. */
#include "proxy/process/probes.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "filters/policy.h"
#include "proxy/base/dns.h"
#include "proxy/base/freshness.h"
#include "proxy/base/http1.h"
#include "proxy/process/workers.h"

#define LOCAL_DIAL_WINDOW_MS 30000 /* a local dial failure counts this long */

/* Every worker's report, and which workers gave none. */
struct reports {
  struct server_stats *st;
  uint64_t silent, stopped;
  bool shutting_down;
};

static int reports_collect(struct workers *ws, struct reports *r) {
  r->st = calloc(ws->n, sizeof(*r->st));
  if (r->st == NULL)
    return -1;
  r->silent = ws->ops->collect(ws, r->st);
  r->stopped = ws->ops->stopped(ws);
  r->shutting_down = ws->draining || !ws->handles_open;
  return 0;
}

/* Every worker answered and has its listeners, unless shutting down. */
static bool loops_work(const struct workers *ws, const struct reports *r, char *reason,
                       size_t size) {
  for (size_t i = 0; i < ws->n && i < 64; i++) {
    uint64_t bit = (uint64_t)1 << i;
    if (r->shutting_down)
      break;
    if (r->stopped & bit) {
      snprintf(reason, size, "worker %zu has stopped", i);
      return false;
    }
    if (r->silent & bit) {
      snprintf(reason, size, "worker %zu did not answer within 1s", i);
      return false;
    }
    if (ws->w[i].srv.nlisteners != ws->shared.cfg->nlisten || ws->shared.cfg->nlisten == 0) {
      snprintf(reason, size, "worker %zu has %zu of %zu listeners bound", i,
               ws->w[i].srv.nlisteners, ws->shared.cfg->nlisten);
      return false;
    }
  }
  return true;
}

bool probes_live(struct workers *ws, char *reason, size_t size) {
  struct reports r;
  bool live;
  if (reports_collect(ws, &r) != 0)
    return true; /* out of memory: not a reason to be restarted */
  live = loops_work(ws, &r, reason, size);
  free(r.st);
  return live;
}

/* Whether the most recent DNS lookup, over every worker, got an answer;
 * otherwise REASON says when and how the last one failed. */
static bool resolvers_answering(const struct workers *ws, const struct reports *r, char *reason,
                                size_t size) {
  uint64_t ok = 0, fail = 0, now = uv_hrtime() / 1000000;
  int why = 0;
  for (size_t i = 0; i < ws->n; i++) {
    if (r->st[i].dns_last_ok_ms > ok)
      ok = r->st[i].dns_last_ok_ms;
    if (r->st[i].dns_last_fail_ms > fail) {
      fail = r->st[i].dns_last_fail_ms;
      why = r->st[i].dns_last_fail;
    }
  }
  if (fail <= ok)
    return true;
  snprintf(reason, size, "resolver not answering: the last lookup failed (%s) %llus ago",
           dns_status_name((enum dns_status)why),
           (unsigned long long)((now > fail ? now - fail : 0) / 1000));
  return false;
}

/* Whether dials work as far as this host is concerned: no dial failed for
 * a local reason in the last LOCAL_DIAL_WINDOW_MS without one connecting
 * since. The window lets an instance taken out of service come back. */
static bool dials_work(const struct workers *ws, const struct reports *r, char *reason,
                       size_t size) {
  uint64_t ok = 0, fail = 0, now = uv_hrtime() / 1000000;
  int why = 0;
  for (size_t i = 0; i < ws->n; i++) {
    const struct upstream_health *h = &r->st[i].dial;
    if (h->last_ok_ms > ok)
      ok = h->last_ok_ms;
    if (h->last_local_fail_ms > fail) {
      fail = h->last_local_fail_ms;
      why = h->last_local_err;
    }
  }
  if (fail == 0 || fail <= ok || now - fail > LOCAL_DIAL_WINDOW_MS)
    return true;
  snprintf(reason, size,
           "connections to destinations fail for a reason on this host: %s (%s) %llus ago, "
           "none connected since",
           uv_strerror(why), uv_err_name(why),
           (unsigned long long)((now > fail ? now - fail : 0) / 1000));
  return false;
}

/* Stale vendor lists: each a warning, or the reason not to be ready. */
static bool lists_acceptable(const struct workers *ws, char *reason, size_t size,
                             struct obuf *warnings) {
  const struct config *cfg = ws->shared.cfg;
  const struct policy *p = cfg->policy;
  int64_t now = server_shared_now(&ws->shared);
  char text[1200];
  if (cfg->readiness.stale_lists == STALE_LISTS_UNREADY)
    return !freshness_any_stale(p, now, reason, size);
  const struct vendor *v;
  for (size_t i = 0; (v = freshness_next_stale(p, now, &i)) != NULL;) {
    freshness_describe(v, now, text, sizeof(text));
    obuf_printf(warnings, "warning: %s\n", text);
  }
  return true;
}

bool probes_ready(struct workers *ws, char *reason, size_t size, struct obuf *warnings) {
  struct reports r;
  char spare[1200];
  bool ready, lists_ok;
  if (ws->shared.cfg->policy == NULL) {
    snprintf(reason, size, "no policy loaded");
    return false;
  }
  if (reports_collect(ws, &r) != 0) {
    snprintf(reason, size, "out of memory");
    return false;
  }
  if (r.shutting_down) {
    snprintf(reason, size, "shutting down");
    ready = false;
  } else {
    ready = loops_work(ws, &r, reason, size) && resolvers_answering(ws, &r, reason, size) &&
            dials_work(ws, &r, reason, size);
  }
  free(r.st);
  /* Warnings are worth reading whether or not something else is wrong;
   * the first reason not to be ready is the one given. */
  lists_ok = lists_acceptable(ws, ready ? reason : spare, ready ? size : sizeof(spare), warnings);
  return ready && lists_ok;
}
