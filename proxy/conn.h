/* A client connection: the HTTP/1.x front end (absolute-form requests and
 * CONNECT), the per-request policy check, forwarding with streamed bodies
 * and backpressure, CONNECT tunnels with half-close, and every error and
 * deny response. */
#ifndef EMBARGO_PROXY_CONN_H
#define EMBARGO_PROXY_CONN_H

#include <sys/types.h>
#include <uv.h>

struct conn;
struct server_clients;
struct upstream_events;

/* What the worker asks of the connections it serves (proxy/server.h):
 * accepting one (never fails loudly: a refused or failed accept is logged
 * and dropped), closing them, counting them. Handed to server_init. */
extern const struct server_clients conn_clients;

/* How C's upstream reports to it (proxy/upstream.h), with C as the owner. */
extern const struct upstream_events conn_upstream_events;

/* Closes C and everything it owns. Idempotent; memory is freed from the
 * close callbacks. */
void conn_close(struct conn *c);

/* A request head of C is complete, before it is judged: pins the snapshot
 * in force now (the previous request's stays with it; a reload is adopted
 * first) and counts the request. */
void conn_request_start(struct conn *c);

#endif
