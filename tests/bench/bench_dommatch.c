/* Benchmark of the domain matcher: lookups against 10 patterns and against
 * 100,000 patterns should cost about the same, because a lookup walks the
 * name's labels, not the pattern list. Prints figures; asserts nothing about
 * time. Patterns and names are generated deterministically. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filters/dommatch.h"

#define NAME_SLOT 96
#define NNAMES 8192
#define NLOOKUPS 4000000

static const char *const tlds[] = {"com", "net", "org", "ru", "de", "io", "co.uk", "info"};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rng_next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Pattern I: half exact names, then "*." and "." suffixes, one in ten a glob.
 * HIT receives a name the pattern matches. */
static void make_pattern(size_t i, char *pat, char *hit) {
  const char *tld = tlds[i % (sizeof(tlds) / sizeof(tlds[0]))];
  unsigned d = (unsigned)i;

  switch (i % 10) {
  case 0: case 1: case 2: case 3: case 4:
    snprintf(pat, NAME_SLOT, "host%u.vendor%u.%s", d, d / 10, tld);
    snprintf(hit, NAME_SLOT, "%s", pat);
    break;
  case 5: case 6:
    snprintf(pat, NAME_SLOT, "*.cdn%u.%s", d, tld);
    snprintf(hit, NAME_SLOT, "a%u.b.cdn%u.%s", d % 7, d, tld);
    break;
  case 7: case 8:
    snprintf(pat, NAME_SLOT, ".upd%u.%s", d, tld);
    snprintf(hit, NAME_SLOT, (d & 1) ? "upd%u.%s" : "x.upd%u.%s", d, tld);
    break;
  default:
    snprintf(pat, NAME_SLOT, "dnl-*.geo%u.%s", d, tld);
    snprintf(hit, NAME_SLOT, "dnl-%02u.geo%u.%s", d % 100, d, tld);
    break;
  }
}

/* Names to look up: every other one hits a pattern of the first NPATTERNS,
 * the rest miss (unknown domains, and near misses under known ones). */
static void make_names(char (*names)[NAME_SLOT], size_t npatterns) {
  char pat[NAME_SLOT];

  for (size_t i = 0; i < NNAMES; i++) {
    size_t p = rng_next() % npatterns;
    if (i % 2 == 0) {
      make_pattern(p, pat, names[i]);
    } else if (i % 4 == 1) {
      snprintf(names[i], NAME_SLOT, "www.site%u.example.%s", rng_next() % 1000000u,
               tlds[i % (sizeof(tlds) / sizeof(tlds[0]))]);
    } else {
      snprintf(names[i], NAME_SLOT, "other%zu.vendor%zu.com", p + 1000000, p / 10);
    }
  }
}

struct result {
  double build_ms;
  double ns_per_lookup;
  size_t hits;
};

static int run(size_t npatterns, struct result *out) {
  static char names[NNAMES][NAME_SLOT];
  char pat[NAME_SLOT], hit[NAME_SLOT];
  size_t lens[NNAMES];
  struct dommatch *m = dommatch_new();
  double t0;
  int ret = -1;

  if (!m)
    goto cleanup;
  t0 = now_ns();
  for (size_t i = 0; i < npatterns; i++) {
    make_pattern(i, pat, hit);
    if (dommatch_add(m, pat, strlen(pat), (void *)(uintptr_t)(i + 1)) != 0) {
      fprintf(stderr, "cannot add pattern %s\n", pat);
      goto cleanup;
    }
  }
  out->build_ms = (now_ns() - t0) / 1e6;
  make_names(names, npatterns);
  for (size_t i = 0; i < NNAMES; i++)
    lens[i] = strlen(names[i]);
  out->hits = 0;
  t0 = now_ns();
  for (size_t i = 0; i < NLOOKUPS; i++) {
    size_t k = i % NNAMES;
    out->hits += dommatch_lookup(m, names[k], lens[k]) != NULL;
  }
  out->ns_per_lookup = (now_ns() - t0) / NLOOKUPS;
  ret = 0;
cleanup:
  dommatch_free(m);
  return ret;
}

/* The middle sizes show how the cost grows between the two ends: with the
 * working set leaving the caches, not with the number of patterns. */
int main(void) {
  static const size_t sizes[] = {10, 1000, 10000, 100000};
  struct result r[4];

  for (size_t i = 0; i < 4; i++) {
    if (run(sizes[i], &r[i]) != 0)
      return 1;
    printf("patterns=%-7zu build=%8.2f ms  lookups=%d  hits=%.1f%%  %.1f ns/lookup\n",
           sizes[i], r[i].build_ms, NLOOKUPS, 100.0 * (double)r[i].hits / NLOOKUPS,
           r[i].ns_per_lookup);
  }
  printf("ratio (100000 / 10 patterns) = %.2f\n", r[3].ns_per_lookup / r[0].ns_per_lookup);
  return 0;
}
