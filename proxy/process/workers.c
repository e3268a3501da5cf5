/* The worker threads and the main thread's loop: signals, the admin
 * endpoint, reloads, the drain and its deadline, figures gathered from
 * every worker. */
#include "proxy/process/workers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/policy.h"
#include "proxy/process/admin.h"
#include "proxy/conn/dispatch.h"
#include "proxy/base/dns.h"
#include "proxy/base/freshness.h"
#include "proxy/process/lists.h"
#include "proxy/process/notify.h"
#include "proxy/base/log.h"
#include "proxy/worker/reload.h"
#include "proxy/worker/upstream.h"

#define REPORT_WAIT_NS     (1000ull * 1000 * 1000) /* a worker answers within this, or is skipped */
#define FRESHNESS_CHECK_MS (3600ull * 1000)        /* stale lists are looked for this often */

static void command_all(struct workers *ws, unsigned cmd) {
  for (size_t i = 0; i < ws->n; i++)
    if (ws->w[i].loop_ready)
      server_command(&ws->w[i].srv, cmd);
}

/* admit_shared's wake: a connection slot freed while listeners are paused. */
static void wake_all(void *arg) {
  command_all(arg, SERVER_CMD_RETRY);
}

size_t workers_connections(const struct workers *ws) {
  return atomic_load(&ws->shared.admit.nconns);
}

/* ---- stopping ------------------------------------------------------------ */

static void stop_all(struct workers *ws) {
  ws->forced = true;
  command_all(ws, SERVER_CMD_STOP);
}

static void on_grace_over(uv_timer_t *t) {
  struct workers *ws = t->data;
  log_diag(LOG_WARN, 0, "shutdown_grace (%llums) is over; closing %zu connection(s)",
           (unsigned long long)ws->shared.cfg->timeouts.shutdown_grace, workers_connections(ws));
  stop_all(ws);
}

static void drain_all(struct workers *ws) {
  ws->draining = true;
  notify_stopping("stopping: connections in flight finish within timeouts.shutdown_grace");
  log_diag(LOG_INFO, 0,
           "stopped accepting; %zu connection(s) may finish within %llums (a second signal "
           "ends them now)",
           workers_connections(ws), (unsigned long long)ws->shared.cfg->timeouts.shutdown_grace);
  uv_timer_start(&ws->grace, on_grace_over, ws->shared.cfg->timeouts.shutdown_grace, 0);
  command_all(ws, SERVER_CMD_DRAIN);
}

static void on_stop_signal(uv_signal_t *h, int signum) {
  struct workers *ws = h->data;
  if (ws->draining) {
    log_diag(LOG_INFO, 0, "received signal %d again; closing %zu connection(s) now", signum,
             workers_connections(ws));
    stop_all(ws);
    return;
  }
  log_diag(LOG_INFO, 0, "received signal %d; shutting down", signum);
  drain_all(ws);
}

static void on_reload_signal(uv_signal_t *h, int signum) {
  char err[600];
  (void)signum;
  workers_reload(h->data, err, sizeof(err));
}

static void on_reopen_signal(uv_signal_t *h, int signum) {
  char err[600];
  int rc = log_reopen(err, sizeof(err));
  (void)h;
  (void)signum;
  if (rc != 0)
    log_diag(LOG_ERR, 0, "cannot reopen the log: %s; still writing to the old file", err);
  else if (strcmp(log_destination(), "-") == 0 || strcmp(log_destination(), "syslog") == 0)
    log_diag(LOG_INFO, 0, "SIGUSR1: the log goes to %s, nothing to reopen",
             strcmp(log_destination(), "-") == 0 ? "standard output" : "syslog");
  else
    log_diag(LOG_INFO, 0, "log %s reopened", log_destination());
}

static void handles_close(struct workers *ws) {
  uv_handle_t *hs[] = {(uv_handle_t *)&ws->sigint, (uv_handle_t *)&ws->sigterm,
                       (uv_handle_t *)&ws->sighup, (uv_handle_t *)&ws->sigusr1,
                       (uv_handle_t *)&ws->grace,  (uv_handle_t *)&ws->freshness};
  if (!ws->handles_open)
    return;
  ws->handles_open = false;
  for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
    uv_close(hs[i], NULL);
  uv_mutex_lock(&ws->mu); /* no worker sends to a closing handle */
  uv_close((uv_handle_t *)&ws->exited, NULL);
  uv_mutex_unlock(&ws->mu);
  admin_close(ws->admin);
  ws->admin = NULL;
  lists_schedule_close(ws->lists);
  ws->lists = NULL;
}

/* Every worker's loop has ended: the main loop ends too. */
static void on_worker_exited(uv_async_t *h) {
  struct workers *ws = h->data;
  size_t n;
  uv_mutex_lock(&ws->mu);
  n = ws->nexited;
  uv_mutex_unlock(&ws->mu);
  if (n < ws->n || !ws->handles_open)
    return;
  if (ws->draining && !ws->forced)
    log_diag(LOG_INFO, 0, "every connection has finished; exiting");
  handles_close(ws);
}

/* Warns about vendor lists past their max_age: at start, after a reload,
 * then once a day (looked at every hour, so a list going stale while
 * Embargo runs is reported within the hour). */
static void on_freshness(uv_timer_t *t) {
  struct workers *ws = t->data;
  freshness_log_stale(ws->shared.cfg->policy, server_shared_now(&ws->shared), uv_now(ws->loop),
                      &ws->freshness_log);
}

static void handles_start(struct workers *ws) {
  uv_signal_t *sigs[] = {&ws->sigint, &ws->sigterm, &ws->sighup, &ws->sigusr1};
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
    uv_signal_init(ws->loop, sigs[i]);
    sigs[i]->data = ws;
  }
  uv_signal_start(&ws->sigint, on_stop_signal, SIGINT);
  uv_signal_start(&ws->sigterm, on_stop_signal, SIGTERM);
  uv_signal_start(&ws->sighup, on_reload_signal, SIGHUP);
  uv_signal_start(&ws->sigusr1, on_reopen_signal, SIGUSR1);
  uv_timer_init(ws->loop, &ws->grace);
  ws->grace.data = ws;
  uv_timer_init(ws->loop, &ws->freshness);
  ws->freshness.data = ws;
  uv_async_init(ws->loop, &ws->exited, on_worker_exited);
  ws->exited.data = ws;
  ws->handles_open = true;
}

/* ---- reports --------------------------------------------------------------- */

/* A worker's SERVER_CMD_REPORT, on its loop. */
static void on_report(struct server *srv, void *arg) {
  struct worker *w = arg;
  struct server_stats st;
  server_stats_read(srv, &st);
  uv_mutex_lock(&w->ws->mu);
  w->stats = st;
  if (w->asked) {
    w->asked = false;
    w->ws->pending--;
    uv_cond_broadcast(&w->ws->reported);
  }
  uv_mutex_unlock(&w->ws->mu);
}

uint64_t workers_collect(struct workers *ws, struct server_stats *out) {
  uint64_t waited = 0, t0 = uv_hrtime(), silent = 0;
  size_t i;
  uv_mutex_lock(&ws->mu);
  ws->pending = 0;
  for (i = 0; i < ws->n; i++) {
    ws->w[i].asked = !ws->w[i].exited;
    ws->pending += ws->w[i].asked;
  }
  uv_mutex_unlock(&ws->mu);
  /* A server that has stopped takes no command; it reports when it exits. */
  command_all(ws, SERVER_CMD_REPORT);
  uv_mutex_lock(&ws->mu);
  while (ws->pending > 0 && waited < REPORT_WAIT_NS) {
    uv_cond_timedwait(&ws->reported, &ws->mu, REPORT_WAIT_NS - waited);
    waited = uv_hrtime() - t0;
  }
  for (i = 0; i < ws->n; i++) {
    if ((ws->w[i].asked || ws->w[i].exited) && i < 64)
      silent |= (uint64_t)1 << i;
    ws->w[i].asked = false;
    out[i] = ws->w[i].stats;
  }
  ws->pending = 0;
  uv_mutex_unlock(&ws->mu);
  return silent;
}

uint64_t workers_stopped(struct workers *ws) {
  uint64_t stopped = 0;
  uv_mutex_lock(&ws->mu);
  for (size_t i = 0; i < ws->n && i < 64; i++)
    if (ws->w[i].exited)
      stopped |= (uint64_t)1 << i;
  uv_mutex_unlock(&ws->mu);
  return stopped;
}

int workers_metrics_view(struct workers *ws, struct metrics_view *v) {
  struct server_stats *st = calloc(ws->n, sizeof(*st));
  const struct server *first = &ws->w[0].srv;
  uint64_t joins = 0;
  size_t i, l;
  if (st == NULL)
    return -ENOMEM;
  workers_collect(ws, st);
  memset(v, 0, sizeof(*v));
  v->policy = ws->shared.cfg->policy;
  v->policy_loaded_at = ws->policy_loaded_at;
  v->now = server_shared_now(&ws->shared);
  v->nlisteners = first->nlisteners;
  v->nworkers = ws->n;
  for (l = 0; l < first->nlisteners; l++) {
    v->listeners[l].name = first->listeners[l].name;
    v->listeners[l].mode = first->listeners[l].mode;
  }
  for (i = 0; i < ws->n; i++) {
    for (l = 0; l < first->nlisteners; l++) {
      v->listeners[l].active += st[i].active[l];
      v->listeners[l].accept_errors += st[i].accept_errors[l];
    }
    if (i < CONFIG_MAX_WORKERS)
      v->worker_active[i] = st[i].nconns;
    v->tunnels += st[i].tunnels;
    joins += st[i].dns.joins; /* lookups that joined one of their own loop's */
  }
  /* Answers and queries running are shared; a lookup joins a query running
   * on its own loop or, in the shared cache, on another. */
  resolver_cache_stats(ws->shared.dns, &v->dns);
  v->dns.joins += joins;
  v->fd_pauses = atomic_load(&ws->shared.admit.fd_pauses);
  v->limit_pauses = atomic_load(&ws->shared.admit.limit_pauses);
  v->client_refusals = atomic_load(&ws->shared.admit.client_refusals);
  v->shutting_down = ws->draining || !ws->handles_open;
  free(st);
  return 0;
}

/* ---- reloading ------------------------------------------------------------- */

int workers_reload(struct workers *ws, char *err, size_t errsize) {
  int rc;
  if (ws->load == NULL || ws->draining) {
    snprintf(err, errsize, "%s", ws->draining ? "shutting down" : "reloading is not available");
    return EMB_ECONFIG;
  }
  notify_reloading();
  rc = server_reload(&ws->shared, ws->load, ws->load_arg, err, errsize);
  notify_serving(policy_version(ws->shared.cfg->policy), rc != 0 ? err : NULL);
  if (rc != 0) {
    snprintf(ws->reload_error, sizeof(ws->reload_error), "%s", err);
    return rc;
  }
  ws->policy_loaded_at = server_shared_now(&ws->shared);
  ws->reload_error[0] = '\0';
  on_freshness(&ws->freshness); /* a list the reload brought may be stale */
  /* Each worker also looks before every accept and request; the command
   * makes an idle one let go of the old configuration now. */
  command_all(ws, SERVER_CMD_SYNC);
  return 0;
}

/* ---- setting up, running, freeing ------------------------------------------ */

static int admin_start(struct workers *ws, char *err, size_t errsize) {
  const struct config *cfg = ws->shared.cfg;
  if (!cfg->admin.enabled)
    return 0;
  for (size_t i = 0; i < cfg->nlisten; i++) {
    if (config_same_socket((const struct sockaddr *)&cfg->admin.listen,
                           (const struct sockaddr *)&cfg->listen[i].addr)) {
      snprintf(err, errsize, "admin.listen %s is the proxy listener %s", cfg->admin.listen_text,
               cfg->listen[i].text);
      return EMB_ECONFIG;
    }
  }
  return admin_open(ws, &ws->admin, err, errsize);
}

static const struct workers_ops ops = {
    .reload = workers_reload,
    .collect = workers_collect,
    .stopped = workers_stopped,
    .metrics_view = workers_metrics_view,
};

int workers_init(struct workers *ws, uv_loop_t *loop, struct config *cfg, int64_t now_override,
                 server_load_fn load, const void *load_arg, char *err, size_t errsize) {
  const struct sockaddr *admin_addr = NULL;
  int rc;

  memset(ws, 0, sizeof(*ws));
  ws->ops = &ops;
  ws->loop = loop;
  ws->load = load;
  ws->load_arg = load_arg;
  ws->n = config_workers(cfg);
  notify_init();
  if (uv_mutex_init(&ws->mu) != 0 || uv_cond_init(&ws->reported) != 0) {
    snprintf(err, errsize, "cannot create a lock");
    return UV_ENOMEM;
  }
  ws->sync_ready = true;
  metrics_set_workers(ws->n);
  handles_start(ws);
  rc = server_shared_init(&ws->shared, cfg, ws->n, now_override, wake_all, ws, err, errsize);
  if (rc != 0)
    return rc;
  ws->policy_loaded_at = server_shared_now(&ws->shared);
  if ((rc = admin_start(ws, err, errsize)) != 0)
    return rc;
  /* The endpoint is not a destination: a request to it through the proxy
   * is refused like one to the proxy itself. */
  if (ws->admin != NULL)
    admin_addr = admin_address(ws->admin);
  if ((ws->w = calloc(ws->n, sizeof(*ws->w))) == NULL) {
    snprintf(err, errsize, "out of memory");
    return UV_ENOMEM;
  }
  for (size_t i = 0; i < ws->n; i++) {
    struct worker *w = &ws->w[i];
    w->ws = ws;
    if ((rc = uv_loop_init(&w->loop)) != 0) {
      snprintf(err, errsize, "cannot create an event loop: %s", uv_strerror(rc));
      return rc;
    }
    w->loop_ready = true;
    rc = server_init(&w->srv, &w->loop, &ws->shared, i, i > 0 ? &ws->w[0].srv : NULL,
                     &dispatch_clients, admin_addr, err, errsize);
    w->srv.report = on_report;
    w->srv.report_arg = w;
    if (rc != 0)
      return rc;
  }
  return 0;
}

static void worker_main(void *arg) {
  struct worker *w = arg;
  struct workers *ws = w->ws;
  char name[16];
  /* "embargo w0", ... in top -H, ps -L and /proc/PID/task/TID/comm. */
  snprintf(name, sizeof(name), "embargo w%zu", w->srv.index);
  pthread_setname_np(pthread_self(), name);
  server_run(&w->srv);
  uv_mutex_lock(&ws->mu);
  w->exited = true;
  memset(&w->stats, 0, sizeof(w->stats));
  if (w->asked) {
    w->asked = false;
    ws->pending--;
    uv_cond_broadcast(&ws->reported);
  }
  ws->nexited++;
  uv_async_send(&ws->exited); /* under the lock: the main thread closes it under it too */
  uv_mutex_unlock(&ws->mu);
}

/* A worker whose thread never ran: its loop is ended here. */
static void worker_end_here(struct workers *ws, struct worker *w) {
  if (w->loop_ready) {
    server_stop(&w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT);
  }
  uv_mutex_lock(&ws->mu);
  w->exited = true;
  ws->nexited++;
  uv_mutex_unlock(&ws->mu);
}

static void log_start(const struct workers *ws) {
  const struct server *first = &ws->w[0].srv;
  for (size_t i = 0; i < first->nlisteners; i++)
    log_diag(LOG_INFO, 0, "listening on %s (%s)", first->listeners[i].name,
             listen_mode_name((enum listen_mode)first->listeners[i].mode));
  if (ws->admin != NULL)
    log_diag(LOG_INFO, 0, "admin endpoint on %s", ws->shared.cfg->admin.listen_text);
  log_diag(LOG_INFO, 0, "%zu worker(s), one event loop each%s", ws->n,
           ws->shared.cfg->workers ? "" : " (one per CPU online)");
}

static int start_threads(struct workers *ws) {
  int rc = 0;
  for (size_t i = 0; i < ws->n; i++) {
    struct worker *w = &ws->w[i];
    if (rc == 0 && (rc = uv_thread_create(&w->thread, worker_main, w)) != 0)
      log_diag(LOG_ERR, 0, "cannot start worker %zu: %s; stopping", i, uv_strerror(rc));
    if (rc == 0)
      w->started = true;
    else
      worker_end_here(ws, w);
  }
  if (rc != 0)
    stop_all(ws);
  return rc;
}

int workers_run(struct workers *ws, bool start) {
  int rc = 0;
  size_t i;
  if (!start || ws->w == NULL) {
    for (i = 0; ws->w != NULL && i < ws->n; i++)
      worker_end_here(ws, &ws->w[i]);
    handles_close(ws);
    uv_run(ws->loop, UV_RUN_DEFAULT);
    return 0;
  }
  rc = start_threads(ws);
  if (rc == 0) {
    log_start(ws);
    notify_serving(policy_version(ws->shared.cfg->policy), NULL);
    uv_timer_start(&ws->freshness, on_freshness, 0, FRESHNESS_CHECK_MS);
    if (lists_schedule_start(ws->loop, ws, &ws->lists) != 0)
      log_diag(LOG_ERR, 0, "lists: out of memory; the vendor lists are not updated");
  }
  on_worker_exited(&ws->exited); /* every thread may have failed to start */
  uv_run(ws->loop, UV_RUN_DEFAULT);
  notify_stopping(NULL); /* every worker has stopped, whatever stopped them */
  for (i = 0; i < ws->n; i++)
    if (ws->w[i].started)
      uv_thread_join(&ws->w[i].thread);
  server_shared_log(&ws->shared);
  return rc;
}

void workers_free(struct workers *ws) {
  for (size_t i = 0; ws->w != NULL && i < ws->n; i++) {
    struct worker *w = &ws->w[i];
    if (!w->loop_ready)
      continue;
    server_free(&w->srv);
    if (uv_loop_close(&w->loop) != 0)
      log_diag(LOG_WARN, 0, "worker %zu: event loop closed with handles still open", i);
  }
  free(ws->w);
  ws->w = NULL;
  server_shared_free(&ws->shared);
  if (ws->sync_ready) {
    uv_cond_destroy(&ws->reported);
    uv_mutex_destroy(&ws->mu);
  }
  ws->sync_ready = false;
}
