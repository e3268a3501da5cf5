/* What /healthz and /readyz judge. Liveness is "this process works": the
 * main loop answers (it runs the probe), every worker's loop answers a
 * report within a second, every listener is bound. Nothing outside the
 * process and no date decides it. Readiness adds what decides whether to
 * send the process traffic: a policy, the resolver answering, dials not
 * failing for a local reason, and, when readiness.stale_lists says so,
 * every vendor list within its max_age. */
#ifndef EMBARGO_PROXY_PROBES_H
#define EMBARGO_PROXY_PROBES_H

#include <stdbool.h>
#include <stddef.h>

struct workers;
struct obuf;

/* Whether the process works. While it shuts down, workers that have ended
 * and listeners that have closed are expected. When not live, REASON
 * receives why ("worker 1 did not answer within 1s"). On the main thread;
 * waits at most a second for the workers. */
bool probes_live(struct workers *ws, char *reason, size_t size);

/* Whether the process is ready for traffic: live, not shutting down, a
 * policy loaded, the most recent DNS lookup answered, no dial failed for
 * a local reason (upstream_error_is_local) in the last 30 s without one
 * connecting since, and, with readiness.stale_lists: unready, no vendor
 * list past its max_age. When not ready, REASON receives why. Either way
 * each warning that does not make it unready (a stale list with
 * stale_lists: warn) is appended to WARNINGS as "warning: ...\n". On the
 * main thread; waits at most a second for the workers. */
bool probes_ready(struct workers *ws, char *reason, size_t size, struct obuf *warnings);

#endif
