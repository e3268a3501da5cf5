/* The admin endpoint: a small HTTP/1.1 server on the main thread's loop, on its
 * own listener (admin.listen), one request per connection, bounded and
 * timed out. Paths: GET /healthz, /readyz, /metrics, /policy; POST /reload.
 * With admin.token_file set, every request needs "Authorization: Bearer
 * TOKEN" (401 otherwise). */
#ifndef EMBARGO_PROXY_ADMIN_H
#define EMBARGO_PROXY_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct workers;
struct admin;
struct server_stats;
struct metrics_view;

/* What the endpoint asks of the process that runs it: the workers' figures
 * (workers_collect), a reload (workers_reload), the metrics view
 * (workers_metrics_view). The process hands these in (struct workers'
 * admin_process); the endpoint calls nothing of it by name. */
struct admin_process {
  void (*collect)(struct workers *ws, struct server_stats *out);
  int (*reload)(struct workers *ws, char *err, size_t errsize);
  int (*metrics_view)(struct workers *ws, struct metrics_view *out);
};

/* Binds admin.listen of the configuration in force and starts accepting on
 * the main loop. *OUT receives the
 * endpoint whatever the result; the caller ends it with admin_close.
 * Returns 0 or a negative libuv code with a message in ERR. */
int admin_open(struct workers *ws, struct admin **out, char *err, size_t errsize);

/* The address the endpoint is bound to. */
const struct sockaddr *admin_address(const struct admin *a);

/* Closes the listener and every admin connection; A frees itself from
 * the last close callback. NULL-safe; A must not be used afterwards. */
void admin_close(struct admin *a);

/* Whether the proxy is ready to serve: every worker's listeners bound, a
 * policy loaded, the resolver answering (the most recent lookup of any
 * worker), every vendor list younger than its max_age, not shutting down.
 * When not, REASON receives why. */
bool admin_ready(struct workers *ws, char *reason, size_t size);

#endif
