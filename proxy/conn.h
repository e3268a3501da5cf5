/* A client connection: the HTTP/1.x front end (absolute-form requests and
 * CONNECT), the per-request policy check, forwarding with streamed bodies
 * and backpressure, CONNECT tunnels with half-close, and every error and
 * deny response. */
#ifndef EMBARGO_PROXY_CONN_H
#define EMBARGO_PROXY_CONN_H

#include <sys/types.h>
#include <uv.h>

struct listener;
struct conn;
struct upstream;

/* Accepts one pending connection on LST. Never fails loudly: a refused or
 * failed accept is logged and dropped. */
void conn_accept(struct listener *lst);

/* Closes C and everything it owns. Idempotent; memory is freed from the
 * close callbacks. */
void conn_close(struct conn *c);

/* Events from the upstream connection C is using (proxy/upstream.c). */
void conn_upstream_read(struct conn *c, struct upstream *up, ssize_t nread, const char *data);
void conn_upstream_drained(struct conn *c, struct upstream *up, int status);
/* The buffer the next read from C's upstream goes into: the loop's read
 * buffer, sized for relaying while C is a tunnel that only relays. */
uv_buf_t conn_upstream_read_buffer(const struct conn *c);

#endif
