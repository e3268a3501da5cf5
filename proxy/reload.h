/* Reloading the configuration: which settings may change live, which keep
 * their running value until a restart, and the lifetime of the
 * configurations a reload replaced. Part of the server (server.h). */
#ifndef EMBARGO_PROXY_RELOAD_H
#define EMBARGO_PROXY_RELOAD_H

struct server;

/* Frees the replaced configurations no live connection can still read. */
void server_config_sweep(struct server *srv);

/* Frees every configuration the server owns (at exit). */
void server_config_free_all(struct server *srv);

#endif
