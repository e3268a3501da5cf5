/* The server: one libuv loop, its listeners, the resolver, the pool of idle
 * upstream connections, the configuration and policy snapshot in force, the
 * one clock every cutoff reads, signals (reload, log reopening, graceful
 * stop) and the admin endpoint. */
#ifndef EMBARGO_PROXY_SERVER_H
#define EMBARGO_PROXY_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "proxy/admit.h"
#include "proxy/destcheck.h"
#include "proxy/listener.h"

struct bump_ctx;
struct resolver;
struct upstream;
struct admin;
struct conn;

/* Loads a fresh configuration for a reload: the same file and command-line
 * overrides as at start. Returns 0, or a negative code with the error
 * ("file:line:col: key: reason") in ERR; on error OUT holds nothing. */
typedef int (*server_load_fn)(const void *arg, struct config *out, char *err, size_t errsize);

/* A configuration loaded by a reload (owned by the server). One that was
 * replaced is kept until every connection accepted while it was in force
 * has gone, since connections read settings at use time. */
struct server_config {
  struct config cfg;
  uint64_t last_conn_id;     /* retired: the newest connection that may read it */
  struct server_config *next;
};

struct server {
  uv_loop_t *loop;
  struct config *cfg;        /* in force: the start-up one (borrowed) or current->cfg */
  struct config *boot_cfg;   /* the one server_init got (borrowed; lives as long as the server) */
  struct server_config *current; /* owned; NULL while boot_cfg is in force */
  struct server_config *retired; /* owned; replaced, waiting for their connections */
  server_load_fn load;       /* NULL: reloading is not possible */
  const void *load_arg;
  struct policy *policy;     /* the snapshot new requests pin */
  int64_t policy_loaded_at;  /* policy clock when it was loaded */
  char reload_error[512];    /* why the last reload failed; "" if it did not */
  struct resolver *resolver;
  struct bump_ctx *bump;     /* the block page over TLS; NULL without a CA */
  struct listener listeners[CONFIG_MAX_LISTEN];
  size_t nlisteners;
  struct admin *admin;       /* the admin endpoint, or NULL (owned) */
  uv_signal_t sigint, sigterm, sighup, sigusr1;
  uv_timer_t tick;           /* housekeeping: drain progress, retired configs */
  uv_timer_t grace;          /* the drain deadline */
  int64_t clock_offset;      /* --now: policy time = wall time + offset */
  uint64_t next_conn_id;
  size_t nconns;
  struct conn *conns;        /* every live client connection */
  struct upstream *idle_head, *idle_tail; /* pooled upstreams, LRU order */
  size_t nidle;
  struct destcheck dest;     /* internal and own-listener refusals */
  struct admit admit;        /* connection limits, descriptor exhaustion */
  char via_host[64];         /* received-by in Via: this host's name */
  char via[96];              /* "HOST (embargo/VERSION)" */
  bool handles_open;         /* signals and timers were initialised */
  bool draining;             /* a stop signal came: no accepting, connections finishing */
  bool stopping;             /* everything is being closed */
};

/* Binds every configured listener (and the admin endpoint) and creates the
 * resolver. CFG is borrowed and must outlive the server. LOAD (may be NULL)
 * re-reads the configuration on SIGHUP or POST /reload. NOW_OVERRIDE, if
 * non-zero, is the policy time at start-up (seconds since the epoch).
 * Returns 0 or a negative code with a message in ERR. */
int server_init(struct server *srv, uv_loop_t *loop, struct config *cfg, int64_t now_override,
                server_load_fn load, const void *load_arg, char *err, size_t errsize);

/* Runs the loop until a stop signal's drain has ended, then closes
 * everything. Returns 0. */
int server_run(struct server *srv);

/* Releases what server_init acquired, once the loop has no handles of the
 * server left (after server_run, or after server_stop and one uv_run). */
void server_free(struct server *srv);

/* Stops at once: listeners and every connection are closed. Idempotent. */
void server_stop(struct server *srv);

/* Starts a graceful stop: listeners close, idle connections are closed,
 * connections in flight may finish for timeouts.shutdown_grace, then
 * server_stop. A second call stops at once. */
void server_drain(struct server *srv);

/* Re-reads the configuration and swaps in the new policy snapshot: new
 * requests use it, requests in flight keep theirs. Settings that need a
 * restart keep their running values (a warning names each). Returns 0, or a
 * negative code with the reason in ERR, the old configuration staying. */
int server_reload(struct server *srv, char *err, size_t errsize);

/* Called when a request head of C is complete, before it is judged: pins
 * the snapshot in force now (the previous request's stays with it) and
 * counts the request. */
void server_request_start(struct conn *c);

/* The policy clock: wall-clock seconds, shifted by --now. */
int64_t server_now(const struct server *srv);

#endif
