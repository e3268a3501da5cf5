/* The process-wide half of the block page over TLS: the TLS server context
 * and the leaf certificates minted for it, made once from the CA and shared
 * by every worker (the leaf cache under a lock; signing only reads the
 * minter, so it may run on any thread). The per-connection half, the TLS
 * server on memory BIOs, belongs to the connection that serves the page.
 * This header does not include OpenSSL: SSL, X509 and EVP_PKEY are named
 * by their struct tags. */
#ifndef EMBARGO_CERTS_BLOCKPAGE_H
#define EMBARGO_CERTS_BLOCKPAGE_H

#include <stddef.h>
#include <stdint.h>

struct ca;
struct blockpage;
struct ssl_st;
struct x509_st;
struct evp_pkey_st;

/* Counters of the leaf cache. */
struct blockpage_stats {
  uint64_t minted;  /* leaves signed */
  uint64_t hits;    /* leaves served from the cache */
  uint64_t evicted; /* leaves dropped to stay within the bound */
  size_t entries;   /* leaves cached now */
};

/* Makes the context for CA (borrowed: it must outlive the context) with a
 * cache of at most CACHE_ENTRIES leaves into *OUT. Returns 0, or -ENOMEM
 * or EMB_ECERT (OpenSSL failed) with *OUT NULL. */
int blockpage_new(const struct ca *ca, size_t cache_entries, struct blockpage **out);

/* Releases BP and every cached leaf. NULL-safe. */
void blockpage_free(struct blockpage *bp);

/* BP's counters, read under its lock. */
void blockpage_stats(struct blockpage *bp, struct blockpage_stats *out);

/* A new TLS server session on BP's context (TLS 1.2 and up, ALPN
 * http/1.1 when offered, no tickets or resumption): the caller frees it
 * with SSL_free. NULL when out of memory. */
struct ssl_st *blockpage_ssl_new(struct blockpage *bp);

/* The cached leaf for NAME, valid at NOW (wall-clock seconds), with a
 * reference of the caller's (another worker may evict it meanwhile); NULL
 * when none is cached. */
struct x509_st *blockpage_lookup(struct blockpage *bp, const char *name, int64_t now);

/* Signs a new leaf for NAME (minter_make), the caller's; NULL on failure.
 * Any thread: it only reads BP. */
struct x509_st *blockpage_mint(const struct blockpage *bp, const char *name, int64_t now);

/* Caches LEAF (taken) for NAME and returns the leaf to use (LEAF, or one
 * cached for NAME meanwhile) with a reference of the caller's, or NULL. */
struct x509_st *blockpage_insert(struct blockpage *bp, const char *name, int64_t now,
                                 struct x509_st *leaf);

/* The private key of every leaf (borrowed). */
struct evp_pkey_st *blockpage_key(const struct blockpage *bp);

#endif
