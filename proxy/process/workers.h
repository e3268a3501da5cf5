/* The process: the worker threads, one event loop and struct server each
 * (`workers:`), and the main thread's loop, which alone handles signals
 * (SIGHUP reload, SIGUSR1 log reopening, SIGTERM/SIGINT drain then stop),
 * the admin endpoint, reloads and the drain deadline, and reaches the
 * workers through server_command (uv_async). */
#ifndef EMBARGO_PROXY_WORKERS_H
#define EMBARGO_PROXY_WORKERS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/process/freshness_log.h"
#include "proxy/base/metrics.h"
#include "proxy/worker/server.h"

struct admin;
struct workers;

/* One worker: its loop, server and thread. */
struct worker {
  struct workers *ws;        /* borrowed: the owner */
  uv_loop_t loop;
  struct server srv;
  uv_thread_t thread;
  struct server_stats stats; /* the last report (under ws->mu) */
  bool asked;                /* a report is due in this round (under ws->mu) */
  bool exited;               /* its loop has ended (under ws->mu) */
  bool loop_ready, started;
};

/* What the modules the process runs (the admin endpoint and its probes,
 * the list schedule) ask of it: a reload, every worker's figures, the
 * workers stopped, the metrics view. They reach it through ws->ops only
 * and name nothing of workers.c. */
struct metrics_view;

struct workers_ops {
  int (*reload)(struct workers *ws, char *err, size_t errsize);
  uint64_t (*collect)(struct workers *ws, struct server_stats *out);
  uint64_t (*stopped)(struct workers *ws);
  int (*metrics_view)(struct workers *ws, struct metrics_view *out);
};

struct workers {
  uv_loop_t *loop;           /* the main thread's */
  struct server_shared shared;
  server_load_fn load;       /* NULL: reloading is not possible */
  const void *load_arg;
  size_t n;
  struct worker *w;          /* N of them (owned) */
  uv_mutex_t mu;             /* guards reports and exits */
  uv_cond_t reported;        /* a report came, or a worker exited */
  size_t pending;            /* reports still due in this round */
  size_t nexited;
  uv_async_t exited;         /* a worker's loop ended */
  uv_signal_t sigint, sigterm, sighup, sigusr1;
  uv_timer_t grace;          /* the drain deadline */
  uv_timer_t freshness;      /* looks for stale vendor lists every hour */
  struct freshness_log freshness_log; /* what it last warned about */
  struct admin *admin;       /* the admin endpoint, or NULL (owned) */
  const struct workers_ops *ops; /* the above, for the modules the process runs */
  struct lists_schedule *lists; /* list bundle updates (proxy/lists.h), or NULL (owned) */
  int64_t policy_loaded_at;  /* policy clock when the policy in force was loaded */
  char reload_error[1024];   /* why the last reload failed; "" if it did not */
  bool sync_ready;           /* mu and reported were initialised */
  bool handles_open;
  bool draining;             /* a stop signal came: workers finish their connections */
  bool forced;               /* the drain was cut short (second signal, grace over) */
};

/* Sets up the process on LOOP (the main thread's) for CFG (borrowed: it
 * must outlive WS): the admin endpoint, then config_workers(CFG) servers,
 * each binding its sockets, in this thread. LOAD (may be NULL) re-reads
 * the configuration on SIGHUP or POST /reload. NOW_OVERRIDE, if non-zero,
 * is the policy time at start-up. Returns 0 or a negative code with a
 * message in ERR; either way WS must be ended with workers_run (which,
 * after a failure, only closes what was opened) and workers_free. */
int workers_init(struct workers *ws, uv_loop_t *loop, struct config *cfg, int64_t now_override,
                 server_load_fn load, const void *load_arg, char *err, size_t errsize);

/* With START (workers_init succeeded, privileges dropped): starts the
 * worker threads and runs the main loop until every worker has stopped
 * (after a stop signal's drain), then joins them. Without START: closes
 * everything workers_init opened. Returns 0, or a negative code when a
 * thread could not be started (the others are stopped). */
int workers_run(struct workers *ws, bool start);

/* Releases what workers_init acquired, after workers_run. */
void workers_free(struct workers *ws);

/* On the main thread: reloads the configuration (server_reload) and tells
 * every worker. Returns 0, or a negative code with the reason in ERR. */
int workers_reload(struct workers *ws, char *err, size_t errsize);

/* On the main thread: every worker's figures into OUT (ws->n entries),
 * each read on its own loop; waits at most a second (a worker that does
 * not answer in time, or has stopped, gives its last figures). Returns the
 * workers that gave no fresh figures, bit N for worker N (of the first 64):
 * its loop did not answer within the second, or has ended. */
uint64_t workers_collect(struct workers *ws, struct server_stats *out);

/* The workers whose loop has ended, bit N for worker N (of the first 64). */
uint64_t workers_stopped(struct workers *ws);

/* On the main thread: the view metrics_render shows (gauges collected from
 * every worker). Returns 0 or -ENOMEM. */
int workers_metrics_view(struct workers *ws, struct metrics_view *out);

/* Client connections open in the process (every worker's). */
size_t workers_connections(const struct workers *ws);

#endif
