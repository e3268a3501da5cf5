/* The proxy's schedule of list updates (lists.h): a timer on the main loop,
 * each update on libuv's thread pool (never on an event loop: the fetch
 * blocks), its outcome logged and counted on the main thread, and a new
 * bundle put in force by a reload. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "filters/policy.h"
#include "proxy/process/lists.h"
#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/process/workers.h"

#define IDLE_CHECK_MS      60000ull  /* lists.url unset: look again this often */
#define RETRY_MAX_MS       900000ull /* a failed update is tried again within 15 min */
#define FIRST_NO_BUNDLE_MS 10000ull  /* no bundle in force yet: the first update within 10 s */

struct lists_schedule {
  struct workers *ws; /* borrowed */
  uv_timer_t timer;
  uv_work_t work;
  struct lists_job *job; /* in flight (owned), or NULL */
  atomic_bool stop;
  bool closing;
  bool timer_open;
};

static const enum metric_counter counters[LISTS_NRESULTS] = {
    [LISTS_APPLIED] = METRIC_LISTS_APPLIED,
    [LISTS_UNCHANGED] = METRIC_LISTS_UNCHANGED,
    [LISTS_FETCH_FAILED] = METRIC_LISTS_FETCH_FAILED,
    [LISTS_MALFORMED] = METRIC_LISTS_MALFORMED,
    [LISTS_BAD_SIGNATURE] = METRIC_LISTS_BAD_SIGNATURE,
    [LISTS_BAD_DIGEST] = METRIC_LISTS_BAD_DIGEST,
    [LISTS_ROLLBACK] = METRIC_LISTS_ROLLBACK,
    [LISTS_INVALID] = METRIC_LISTS_INVALID,
    [LISTS_CACHE_FAILED] = METRIC_LISTS_CACHE_FAILED,
    [LISTS_FUTURE] = METRIC_LISTS_FUTURE,
};

/* A random number of milliseconds in [0, SPAN]. */
static uint64_t jitter(uint64_t span) {
  uint64_t r = 0;
  if (span == 0 || uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) != 0)
    return 0;
  return r % (span + 1);
}

/* The wait before the next update: INTERVAL less up to a tenth of it. */
static uint64_t next_wait(uint64_t interval) {
  return interval - jitter(interval / 10);
}

static void maybe_free(struct lists_schedule *s) {
  if (s->closing && !s->timer_open && s->job == NULL)
    free(s);
}

static void on_timer_closed(uv_handle_t *h) {
  struct lists_schedule *s = h->data;
  s->timer_open = false;
  maybe_free(s);
}

static void on_work(uv_work_t *req) {
  struct lists_schedule *s = req->data;
  lists_job_run(s->job);
}

/* Logs J's outcome and puts an applied bundle in force. */
static void report(struct lists_schedule *s, const struct lists_job *j) {
  const struct config *cfg = s->ws->shared.cfg;
  char err[1200];
  metrics_add(counters[j->result], 1);
  if (j->result == LISTS_UNCHANGED) {
    log_diag(LOG_INFO, 0, "lists: %s: %s", j->settings.url, j->message);
    return;
  }
  if (j->result != LISTS_APPLIED) {
    log_diag(LOG_WARN, 0, "lists: %s: bundle refused (%s): %s; the lists in force stay (%s %llu)",
             j->settings.url, lists_result_name(j->result), j->message,
             cfg->lists.serial ? "bundle serial" : "compiled in, serial",
             (unsigned long long)cfg->lists.serial);
    return;
  }
  log_diag(LOG_INFO, 0, "lists: %s: %s; reloading", j->settings.url, j->message);
  if (s->ws->ops->reload(s->ws, err, sizeof(err)) != 0)
    log_diag(LOG_WARN, 0,
             "lists: bundle serial %llu is cached but not in force: the reload failed (%s); "
             "it comes into force with the next good reload",
             (unsigned long long)j->got_serial, err);
  else
    log_diag(LOG_INFO, 0, "lists: bundle serial %llu in force: policy %s",
             (unsigned long long)s->ws->shared.cfg->lists.serial,
             policy_version(s->ws->shared.cfg->policy));
}

static void on_tick(uv_timer_t *t);

static void on_done(uv_work_t *req, int status) {
  struct lists_schedule *s = req->data;
  struct lists_job *j = s->job;
  uint64_t interval = j->settings.interval;
  bool good = j->result == LISTS_APPLIED || j->result == LISTS_UNCHANGED;
  s->job = NULL;
  if (status == 0 && !s->closing)
    report(s, j);
  free(j);
  if (s->closing) {
    maybe_free(s);
    return;
  }
  if (!good && interval > RETRY_MAX_MS)
    interval = RETRY_MAX_MS;
  uv_timer_start(&s->timer, on_tick, next_wait(interval), 0);
}

static void on_tick(uv_timer_t *t) {
  struct lists_schedule *s = t->data;
  const struct config *cfg = s->ws->shared.cfg;
  if (s->job != NULL || s->closing)
    return;
  if (!cfg->lists.enabled || cfg->lists.url[0] == '\0') {
    uv_timer_start(&s->timer, on_tick, IDLE_CHECK_MS, 0);
    return;
  }
  if ((s->job = malloc(sizeof(*s->job))) == NULL) {
    uv_timer_start(&s->timer, on_tick, RETRY_MAX_MS, 0);
    return;
  }
  lists_job_init(s->job, cfg);
  s->job->stop = &s->stop;
  s->work.data = s;
  if (uv_queue_work(t->loop, &s->work, on_work, on_done) != 0) {
    free(s->job);
    s->job = NULL;
    uv_timer_start(&s->timer, on_tick, RETRY_MAX_MS, 0);
  }
}

int lists_schedule_start(uv_loop_t *loop, struct workers *ws, struct lists_schedule **out) {
  const struct config_lists *l = &ws->shared.cfg->lists;
  struct lists_schedule *s = calloc(1, sizeof(*s));
  uint64_t first;
  *out = NULL;
  if (s == NULL)
    return -ENOMEM;
  s->ws = ws;
  atomic_init(&s->stop, false);
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->timer_open = true;
  /* A fleet started together spreads its first fetches over a tenth of the
   * interval; an instance with no bundle yet fetches within seconds. */
  if (!l->enabled || l->url[0] == '\0')
    first = IDLE_CHECK_MS;
  else if (l->serial == 0)
    first = jitter(l->interval / 10 < FIRST_NO_BUNDLE_MS ? l->interval / 10 : FIRST_NO_BUNDLE_MS);
  else
    first = jitter(l->interval / 10);
  uv_timer_start(&s->timer, on_tick, first, 0);
  *out = s;
  return 0;
}

void lists_schedule_close(struct lists_schedule *s) {
  if (s == NULL || s->closing)
    return;
  s->closing = true;
  atomic_store(&s->stop, true);
  if (s->job != NULL)
    uv_cancel((uv_req_t *)&s->work); /* not started yet: on_done gets UV_ECANCELED */
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
