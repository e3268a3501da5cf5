/* The dispatcher: the one place that names every phase of a client
 * connection, and the connection layer's face to the worker. */
#ifndef EMBARGO_PROXY_DISPATCH_H
#define EMBARGO_PROXY_DISPATCH_H

struct server_clients;

/* What a worker asks of the connections it serves (accept, close, count),
 * for server_init: accepted connections run through the phase table. */
extern const struct server_clients dispatch_clients;

#endif
