/* The block page's TLS server context and its shared leaf cache. */
#include "certs/blockpage.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certs/mint.h"
#include "filters/err.h"

struct blockpage {
  SSL_CTX *ssl;
  struct minter *minter; /* its cache is used under MU */
  pthread_mutex_t mu;
  bool mu_ready;
};

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  static const unsigned char http11[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  (void)ssl;
  (void)arg;
  if (SSL_select_next_proto(&sel, outlen, http11, sizeof(http11) - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no http/1.1 offered: go on without ALPN */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

int blockpage_new(const struct ca *ca, size_t cache_entries, struct blockpage **out) {
  struct blockpage *bp;
  *out = NULL;
  if ((bp = calloc(1, sizeof(*bp))) == NULL)
    return -ENOMEM;
  bp->mu_ready = pthread_mutex_init(&bp->mu, NULL) == 0;
  bp->ssl = SSL_CTX_new(TLS_server_method());
  bp->minter = minter_new(ca, cache_entries);
  if (bp->ssl == NULL || bp->minter == NULL || !bp->mu_ready) {
    blockpage_free(bp);
    ERR_clear_error();
    return EMB_ECERT;
  }
  SSL_CTX_set_min_proto_version(bp->ssl, TLS1_2_VERSION);
  /* Every connection is answered once and closed: nothing to resume. */
  SSL_CTX_set_options(bp->ssl, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(bp->ssl, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(bp->ssl, 0);
  SSL_CTX_set_mode(bp->ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(bp->ssl, on_alpn, NULL);
  *out = bp;
  return 0;
}

void blockpage_free(struct blockpage *bp) {
  if (bp == NULL)
    return;
  SSL_CTX_free(bp->ssl);
  minter_free(bp->minter);
  if (bp->mu_ready)
    pthread_mutex_destroy(&bp->mu);
  free(bp);
}

void blockpage_stats(struct blockpage *bp, struct blockpage_stats *out) {
  struct minter_stats ms;
  pthread_mutex_lock(&bp->mu);
  minter_stats(bp->minter, &ms);
  pthread_mutex_unlock(&bp->mu);
  out->minted = ms.minted;
  out->hits = ms.hits;
  out->evicted = ms.evicted;
  out->entries = ms.entries;
}

SSL *blockpage_ssl_new(struct blockpage *bp) {
  return SSL_new(bp->ssl);
}

X509 *blockpage_lookup(struct blockpage *bp, const char *name, int64_t now) {
  X509 *leaf = NULL;
  pthread_mutex_lock(&bp->mu);
  if (minter_lookup(bp->minter, name, now, &leaf))
    X509_up_ref(leaf);
  else
    leaf = NULL;
  pthread_mutex_unlock(&bp->mu);
  return leaf;
}

X509 *blockpage_mint(const struct blockpage *bp, const char *name, int64_t now) {
  return minter_make(bp->minter, name, now);
}

X509 *blockpage_insert(struct blockpage *bp, const char *name, int64_t now, X509 *leaf) {
  pthread_mutex_lock(&bp->mu);
  if ((leaf = minter_insert(bp->minter, name, now, leaf)) != NULL)
    X509_up_ref(leaf);
  pthread_mutex_unlock(&bp->mu);
  return leaf;
}

EVP_PKEY *blockpage_key(const struct blockpage *bp) {
  return minter_key(bp->minter);
}
