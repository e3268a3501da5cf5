/* The admin endpoint: a small HTTP/1.1 server on the main thread's loop, on its
 * own listener (admin.listen), one request per connection, its head within
 * 3 s, at most 8 connections per client address and 64 in all (beyond
 * either, the oldest connection still waiting for its request is closed,
 * so a probe always gets in). Paths: GET /healthz (liveness), /readyz
 * (readiness), /metrics, /policy; POST /reload. Requests a web page could
 * make are refused (proxy/admingate.c). With admin.token_file set, every
 * request needs "Authorization: Bearer TOKEN" (401 otherwise). */
#ifndef EMBARGO_PROXY_ADMIN_H
#define EMBARGO_PROXY_ADMIN_H

#include <stddef.h>
#include <sys/socket.h>

struct workers;
struct admin;

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

#endif
