/* Leaf certificates minted by Embargo's CA for the names of connections it
 * has already decided to deny, so that the block page can be served over
 * TLS. Minted leaves are kept in an LRU cache bounded by entry count and
 * keyed by name. Includes OpenSSL: for the TLS modules only. */
#ifndef EMBARGO_CERTS_MINT_H
#define EMBARGO_CERTS_MINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certs/ca.h"

#define MINT_BACKDATE_SECONDS     3600       /* notBefore = now - 1 h, for client clock skew */
#define MINT_LIFETIME_SECONDS     (6 * 3600) /* notAfter = now + 6 h (at most the CA's) */
#define MINT_REUSE_MARGIN_SECONDS 3600       /* a cached leaf is reminted 1 h before notAfter */
#define MINT_DEFAULT_CACHE        1000

struct minter;

struct minter_stats {
  uint64_t minted;  /* leaves signed */
  uint64_t hits;    /* leaves served from the cache */
  uint64_t evicted; /* leaves dropped to stay within the bound */
  size_t entries;   /* leaves cached now (<= the bound) */
};

/* A minter signing with CA (borrowed: it must outlive the minter) and
 * caching at most MAX_ENTRIES leaves (at least 1). Generates the process's
 * one leaf key (EC P-256). Returns NULL when out of memory or when the key
 * cannot be made. */
struct minter *minter_new(const struct ca *ca, size_t max_entries);

/* Releases M and every cached leaf. NULL-safe. */
void minter_free(struct minter *m);

/* The leaf for NAME (a normalised DNS name, or an IPv4/IPv6 literal, which
 * gets an IP subjectAltName), valid at NOW (wall-clock seconds): from the
 * cache, or minted: subjectAltName = NAME only, random 128-bit serial,
 * notBefore NOW - 1 h, notAfter NOW + 6 h, basicConstraints CA:FALSE,
 * keyUsage digitalSignature, extendedKeyUsage serverAuth, signed with the
 * CA's key (SHA-256). Returns 0 and *LEAF, borrowed until the next
 * minter_leaf or minter_free (SSL_use_certificate takes its own
 * reference), or EMB_ECERT / -ENOMEM. */
int minter_leaf(struct minter *m, const char *name, int64_t now, X509 **leaf);

/* The three steps of minter_leaf, for callers that mint on another thread.
 * minter_lookup: a cached leaf for NAME valid at NOW into *LEAF (borrowed,
 * as above), or false (a leaf too close to its end is dropped).
 * minter_make: a new leaf (caller owns it), or NULL; reads M without
 * changing it, so it may run on any thread while the loop thread does
 * nothing but lookups and inserts.
 * minter_insert: caches LEAF (takes ownership) and returns the leaf to use
 * (borrowed): LEAF, or the one already cached if NAME was minted meanwhile;
 * NULL when out of memory (LEAF freed). Lookup and insert are for one
 * thread only. */
bool minter_lookup(struct minter *m, const char *name, int64_t now, X509 **leaf);
X509 *minter_make(const struct minter *m, const char *name, int64_t now);
X509 *minter_insert(struct minter *m, const char *name, int64_t now, X509 *leaf);

/* The private key of every leaf (borrowed). */
EVP_PKEY *minter_key(const struct minter *m);

/* Counters and the cache's size. */
void minter_stats(const struct minter *m, struct minter_stats *out);

#endif
