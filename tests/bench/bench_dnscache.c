/* DNS cache micro-benchmark: fills the cache with 100,000 names, then times
 * a few million lookups that all hit, and prints throughput, latency per
 * lookup and memory. Prints figures only; asserts nothing about time. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/base/dnscache.h"

#define NAMES 100000
#define LOOKUPS 5000000
#define HOT 1000

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Two addresses and a CNAME, shaped like a CDN answer. */
static void make_answer(struct dns_result *r, unsigned i) {
  memset(r, 0, sizeof(*r));
  struct sockaddr_in *a = (struct sockaddr_in *)&r->addrs[0];
  struct sockaddr_in6 *b = (struct sockaddr_in6 *)&r->addrs[1];
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(0x0a000000u | i);
  b->sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::1", &b->sin6_addr);
  r->naddrs = 2;
  snprintf(r->cnames[0], sizeof(r->cnames[0]), "edge%u.cdn.example.net", i % 64);
  r->ncnames = 1;
  r->ttl = 3600;
}

/* Times LOOKUPS hits on names drawn from the first N, in a fixed
 * pseudo-random order; *hits counts them. Returns seconds. */
static double run(struct dnscache *c, char (*names)[40], unsigned n, uint64_t *hits) {
  static struct dns_result out;
  enum dnscache_state state;
  enum dns_status status;
  uint64_t x = 88172645463325252u;
  double t0 = now_s();
  for (unsigned i = 0; i < LOOKUPS; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    dnscache_lookup(c, names[x % n], 443, 1000, NULL, &state, &status, &out);
    *hits += state == DNSCACHE_HIT;
  }
  return now_s() - t0;
}

int main(void) {
  static char names[NAMES][40];
  static struct dns_result r;
  struct dnscache_limits limits = {.min_ttl_ms = 5000, .max_ttl_ms = 3600000,
                                   .negative_ttl_ms = 30000, .max_entries = NAMES,
                                   .max_bytes = (size_t)1 << 30, .seed = {0x1234, 0x5678}};
  struct dnscache *c = NULL;
  struct dnscache_waitlist notify;
  struct dnscache_stats st;
  uint64_t hits = 0;
  if (dnscache_new(&limits, &c) < 0)
    return 1;
  double t0 = now_s();
  for (unsigned i = 0; i < NAMES; i++) {
    snprintf(names[i], sizeof(names[i]), "host%06u.s%02u.example.com", i, i % 20);
    make_answer(&r, i);
    if (dnscache_complete(c, names[i], DNS_OK, &r, 0, &notify) < 0)
      return 1;
  }
  double fill = now_s() - t0;
  double t = run(c, names, NAMES, &hits);
  uint64_t hot_hits = 0;
  double hot = run(c, names, HOT, &hot_hits);
  dnscache_stats(c, &st);
  printf("fill:    %u names in %.3f s (%.0f ns/store)\n", NAMES, fill, fill * 1e9 / NAMES);
  printf("lookups over all %u names: %u (%llu hits) in %.3f s: %.2f M lookups/s, "
         "%.0f ns/lookup\n", NAMES, LOOKUPS, (unsigned long long)hits, t, LOOKUPS / t / 1e6,
         t * 1e9 / LOOKUPS);
  printf("lookups over %u hot names: %u (%llu hits) in %.3f s: %.2f M lookups/s, "
         "%.0f ns/lookup\n", HOT, LOOKUPS, (unsigned long long)hot_hits, hot,
         LOOKUPS / hot / 1e6, hot * 1e9 / LOOKUPS);
  printf("memory:  %zu entries, %zu bytes of entries (%.0f B/entry) + %zu bytes of table\n",
         st.entries, st.bytes, (double)st.bytes / (double)st.entries, st.table_bytes);
  dnscache_free(c);
  return hits == LOOKUPS && hot_hits == LOOKUPS ? 0 : 1;
}
