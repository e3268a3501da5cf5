/* Benchmark of the request-path matcher with the shapes of the shipped
 * Kaspersky patterns: the cost of judging an ordinary path (the common
 * case: no match), an update file, and a long padded path. Prints figures;
 * asserts nothing about time. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "filters/pathmatch.h"

#define NLOOKUPS 2000000

static const char *const patterns[] = {
    "**/index/u0607g.xml",
    "**/index/u0607ga.xml",
    "**/index/u1313g.xml",
    "**/index/u1901g.xml",
    "**/index/um1313g.xml",
    "**/index/um1901g.xml",
    "**/index/umeta.xml",
    "**/index/ummeta.xml",
    "**/bases/*/*-0607g.xml",
    "**/bases/*/*/*-0607g.xml",
    "**/bases/av/kdb/*/kdb-*-0607g.xml*",
    "**/updates/*/*-1313g.xml",
    "**/updates/*/*-1901g.xml",
    "**/autopatches/*-0607g.xml",
    "**/autopatches/*/*-0607g.xml",
    "**/bases/av/kdb/*/*.kdc",
    "**/bases/av/kdb/*/*.mft",
    "**/bases/av/kdb/*/*.stt",
    "**/updates/kdb/*/*.mft",
    "**/updates/kdb/*/*.stt",
    "**/bases/ids/*/*.kdz",
    "**/diffs/bases/ids/*/*.kdz.srf",
};

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void run(const struct pathmatch *m, const char *what, const char *path) {
  size_t len = strlen(path), hits = 0;
  double t0 = now_ns();
  for (int i = 0; i < NLOOKUPS; i++)
    hits += pathmatch_lookup(m, path, len) != NULL;
  double ns = (now_ns() - t0) / NLOOKUPS;
  printf("%-28s %6zu bytes  %7.1f ns/lookup  (%s)\n", what, len, ns,
         hits == NLOOKUPS ? "match"
         : hits == 0      ? "no match"
                          : "mixed");
}

int main(void) {
  static char padded[8192];
  static int tag;
  struct pathmatch *m = pathmatch_new();
  if (m == NULL)
    return 1;
  for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
    if (pathmatch_add(m, patterns[i], strlen(patterns[i]), &tag) != 0)
      return 1;
  strcpy(padded, "/static/");
  for (int i = 0; i < 400; i++)
    strcat(padded, "aaaaaaaaaaaaaaa/");
  strcat(padded, "app.js?v=1");
  printf("%zu patterns, %d lookups each\n", pathmatch_count(m), NLOOKUPS);
  run(m, "ordinary path", "/images/2026/12/photo-of-the-day.jpg?size=large");
  run(m, "update index", "/kav/Updates/index/u0607g.xml");
  run(m, "database file", "/mirror/bases/av/kdb/i386/dailyc.kdc");
  run(m, "long ordinary path", padded);
  pathmatch_free(m);
  return 0;
}
