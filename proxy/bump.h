/* The process-wide half of the block page over TLS: the TLS server context
 * and the leaf minter, made once from the config's CA and shared by every
 * worker (the leaf cache under a lock). The per-connection half is declared
 * in conn-int.h. Does not include OpenSSL. */
#ifndef EMBARGO_PROXY_BUMP_H
#define EMBARGO_PROXY_BUMP_H

#include <stddef.h>

struct config;
struct bump_ctx;

/* Makes the context for CFG's CA into *OUT; *OUT is NULL when no CA is
 * configured (every TLS deny is then an alert). Returns 0, or a negative
 * code with a message in ERR. */
int bump_ctx_new(const struct config *cfg, struct bump_ctx **out, char *err, size_t errsize);

/* Releases CTX. NULL-safe. */
void bump_ctx_free(struct bump_ctx *ctx);

/* CTX's counters go to the diagnostics (minted, served from the cache,
 * evicted, cached now, the bound). Called once, when the proxy stops. */
void bump_ctx_log_stats(struct bump_ctx *ctx, size_t bound);

#endif
