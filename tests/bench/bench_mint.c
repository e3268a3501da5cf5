/* Benchmark of leaf minting: makes a CA in a temporary directory, then
 * mints leaves for distinct names (cache misses, each a signature by the CA
 * key) and serves one name from the cache (hits). Prints microseconds per
 * leaf, the p99 of single mints, and, for scale, the server side of the TLS
 * handshake that follows a mint; asserts nothing about time. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "certs/ca.h"
#include "certs/mint.h"

#define NMINT  2000
#define NHIT   200000
#define NSHAKE 300

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Moves what A wrote into B's input. */
static void pump(SSL *a, SSL *b) {
  char buf[16384];
  int n;
  while ((n = BIO_read(SSL_get_wbio(a), buf, sizeof(buf))) > 0)
    BIO_write(SSL_get_rbio(b), buf, n);
}

static SSL *memory_ssl(SSL_CTX *ctx) {
  SSL *s = SSL_new(ctx);
  SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  return s;
}

/* Microseconds the server side of one TLS 1.3 handshake spends (ECDHE and
 * the leaf key's signature), the loop's other cost per bumped connection. */
static double server_handshake_us(SSL_CTX *sctx, SSL_CTX *cctx, X509 *leaf, EVP_PKEY *key) {
  SSL *srv = memory_ssl(sctx), *cli = memory_ssl(cctx);
  double spent = 0, t0;
  SSL_use_certificate(srv, leaf);
  SSL_use_PrivateKey(srv, key);
  SSL_set_accept_state(srv);
  SSL_set_connect_state(cli);
  for (int i = 0; i < 10 && !(SSL_is_init_finished(srv) && SSL_is_init_finished(cli)); i++) {
    SSL_do_handshake(cli);
    pump(cli, srv);
    t0 = now_us();
    SSL_do_handshake(srv);
    spent += now_us() - t0;
    pump(srv, cli);
  }
  SSL_free(srv);
  SSL_free(cli);
  return spent;
}

static void bench_handshake(X509 *leaf, EVP_PKEY *key) {
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
  double total = 0;
  SSL_CTX_set_num_tickets(sctx, 0);
  for (int i = 0; i < NSHAKE; i++)
    total += server_handshake_us(sctx, cctx, leaf, key);
  printf("server side of a TLS 1.3 handshake with a minted leaf: %.1f us mean over %d\n",
         total / NSHAKE, NSHAKE);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

int main(void) {
  char dir[64] = "/tmp/embargo-bench-mint-XXXXXX", path[128], err[512], name[64];
  struct ca_init_opts o = {.subject = "Bench", .days = 2, .now = (int64_t)time(NULL)};
  static double each[NMINT];
  struct ca *ca = NULL;
  struct minter *m;
  X509 *leaf;
  double t0, total = 0;
  int rc = 1;

  if (mkdtemp(dir) == NULL)
    return 1;
  snprintf(path, sizeof(path), "%s/ca", dir);
  if (ca_init(path, &o, err, sizeof(err)) != 0 ||
      ca_load(path, o.now, &ca, err, sizeof(err)) != 0) {
    fprintf(stderr, "bench_mint: %s\n", err);
    goto cleanup;
  }
  m = minter_new(ca, NMINT);
  for (int i = 0; i < NMINT; i++) {
    snprintf(name, sizeof(name), "n%d.upd.example.com", i);
    t0 = now_us();
    if (minter_leaf(m, name, o.now, &leaf) != 0) {
      fprintf(stderr, "bench_mint: minting %s failed\n", name);
      minter_free(m);
      goto cleanup;
    }
    each[i] = now_us() - t0;
    total += each[i];
  }
  qsort(each, NMINT, sizeof(each[0]), cmp_double);
  printf("mint (cache miss, EC P-256 CA, SHA-256): %d leaves, %.1f us/leaf mean, p50 %.1f us, "
         "p99 %.1f us, max %.1f us\n",
         NMINT, total / NMINT, each[NMINT / 2], each[NMINT * 99 / 100], each[NMINT - 1]);
  t0 = now_us();
  for (int i = 0; i < NHIT; i++)
    minter_leaf(m, "n7.upd.example.com", o.now, &leaf);
  printf("cache hit: %.3f us/lookup over %d lookups\n", (now_us() - t0) / NHIT, NHIT);
  bench_handshake(leaf, minter_key(m));
  minter_free(m);
  rc = 0;
cleanup:
  ca_free(ca);
  snprintf(path, sizeof(path), "rm -rf %s", dir);
  if (system(path) != 0)
    rc = 1;
  return rc;
}
