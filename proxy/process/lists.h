/* Keeping the vendor lists current from a signed bundle (`lists`): one
 * update (fetch, check, try, cache), blocking, shared by `embargo lists
 * fetch` and the proxy; and the proxy's schedule for it on the main loop,
 * which runs each update on libuv's thread pool and puts a new bundle in
 * force like a reload. */
#ifndef EMBARGO_PROXY_LISTS_H
#define EMBARGO_PROXY_LISTS_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"

/* What one update came to; the names are the `result` label of
 * embargo_lists_fetch_total. */
enum lists_result {
  LISTS_APPLIED,       /* a newer bundle was checked, tried and cached */
  LISTS_UNCHANGED,     /* the bundle in force, again */
  LISTS_FETCH_FAILED,  /* no bundle came: name, connection, TLS, HTTP, size */
  LISTS_MALFORMED,     /* not a bundle */
  LISTS_BAD_SIGNATURE, /* not signed with lists.pubkey */
  LISTS_BAD_DIGEST,    /* a file is not the one its signed manifest describes */
  LISTS_ROLLBACK,      /* a serial not above the one in force (an old or replayed bundle) */
  LISTS_INVALID,       /* its lists do not load with the configuration */
  LISTS_CACHE_FAILED,  /* it could not be written to lists.cache_dir */
  LISTS_FUTURE,        /* created more than LISTS_FUTURE_SLACK ahead of this host's clock */
  LISTS_NRESULTS
};

/* How far ahead of this host's clock a bundle's creation may be. A bundle
 * from further ahead comes from a signer whose clock is wrong, or was made
 * to outrank every later one (the serial defaults to the creation time),
 * and its lists' age would read negative, silencing the stale warning. */
#define LISTS_FUTURE_SLACK (24 * 3600)

/* "applied", "unchanged", "fetch_failed", ... */
const char *lists_result_name(enum lists_result r);

/* One update: its inputs, copied from the configuration in force, and its
 * outcome. Touched by one thread at a time. */
struct lists_job {
  struct config_lists settings; /* url, pubkey, cache_dir, ca_file, proxy */
  char config_path[512];        /* to try the bundle with; "" for the built-in configuration */
  uint64_t serial;              /* of the bundle in force (0: none) */
  char digest[65];              /* its manifest's SHA-256 */
  const atomic_bool *stop;      /* set to give up (the process is stopping); may be NULL */
  enum lists_result result;
  uint64_t got_serial; /* the fetched bundle's, once it verified */
  int64_t got_created;
  char message[1600]; /* what happened, for the log */
};

/* Fills JOB's inputs from CFG (the configuration in force). */
void lists_job_init(struct lists_job *job, const struct config *cfg);

/* Blocking: fetches settings.url; checks the signature with
 * settings.pubkey and every file's digest; refuses a serial not above
 * JOB->serial, nor above the cached bundle's when that one verifies and is
 * newer (the same bundle again is LISTS_UNCHANGED; the newer cached one
 * again is LISTS_APPLIED, so a reload puts it in force); loads the
 * configuration at config_path with the bundle's lists; writes the bundle
 * to cache_dir/lists.bundle (a temporary file, fsync, rename). Only then
 * LISTS_APPLIED: loading the configuration again puts it in force. */
void lists_job_run(struct lists_job *job);

struct workers;
struct lists_schedule;

/* On the main loop: starts updating the lists of WS's configuration in
 * force (borrowed) every lists.interval (less a random part of up to 10%,
 * so a fleet's instances spread out; the first soon after start), as long
 * as lists.url is set (looked at again each time). A failed update is tried
 * again after min(interval, 15 min). Each outcome is logged and counted;
 * LISTS_APPLIED reloads the configuration (workers_reload). Returns 0 or
 * -ENOMEM. */
int lists_schedule_start(uv_loop_t *loop, struct workers *ws, struct lists_schedule **out);

/* Stops: an update in flight is asked to give up (within 200 ms of its
 * current wait) and its outcome dropped. The schedule frees itself once
 * its handles are closed and its work is done. NULL-safe. */
void lists_schedule_close(struct lists_schedule *s);

#endif
