/* Reloading the configuration: which settings may change live, which keep
 * their running value until a restart, how each worker adopts the new one,
 * and the lifetime of the configurations a reload replaced. Part of the
 * server (server.h). */
#ifndef EMBARGO_PROXY_RELOAD_H
#define EMBARGO_PROXY_RELOAD_H

#include <stddef.h>

#include "proxy/worker/server.h"

/* On the main thread: loads a fresh configuration with LOAD and puts it in
 * force for every worker (new connections and requests use it; requests in
 * flight keep theirs). Settings that need a restart keep their running
 * values (a warning names each). Logs and counts the result. Returns 0
 * with "policy VERSION" in ERR, or a negative code with the reason in ERR,
 * the old configuration staying. */
int server_reload(struct server_shared *sh, server_load_fn load, const void *load_arg, char *err,
                  size_t errsize);

/* Drops a reference to H, freeing it with the last one. NULL-safe. */
void server_config_unref(struct server_config *h);

/* Frees the replaced configurations no live connection of SRV can still
 * read. */
void server_config_sweep(struct server *srv);

/* Drops every configuration SRV holds (at exit). */
void server_config_free_all(struct server *srv);

#endif
