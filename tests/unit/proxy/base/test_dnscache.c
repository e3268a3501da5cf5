/* The resolver's cache: TTL clamping, expiry, negative answers, LRU
 * eviction by count and by bytes, coalesced lookups, counters. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/base/dnscache.h"

#define SEC UINT64_C(1000)

static struct dnscache *cache;

static const struct dnscache_limits limits = {
  .min_ttl_ms = 5 * SEC,
  .max_ttl_ms = 3600 * SEC,
  .negative_ttl_ms = 30 * SEC,
  .max_entries = 100,
  .max_bytes = 1 << 20,
  .seed = {1, 2},
};

static void open_cache(const struct dnscache_limits *l) {
  dnscache_free(cache);
  cache = NULL;
  cr_assert_eq(dnscache_new(l, &cache), 0);
}

static void setup(void) {
  open_cache(&limits);
}

static void teardown(void) {
  dnscache_free(cache);
  cache = NULL;
}

TestSuite(dnscache, .init = setup, .fini = teardown);

/* An answer with one IPv4 address 192.0.2.N, one IPv6 and CNAME. */
static struct dns_result answer(uint8_t n, uint32_t ttl, const char *cname) {
  struct dns_result r;
  memset(&r, 0, sizeof(r));
  struct sockaddr_in *a = (struct sockaddr_in *)&r.addrs[0];
  struct sockaddr_in6 *b = (struct sockaddr_in6 *)&r.addrs[1];
  a->sin_family = AF_INET;
  a->sin_port = htons(9); /* answers are stored without a port */
  uint8_t v4[4] = {192, 0, 2, n};
  memcpy(&a->sin_addr, v4, 4);
  b->sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::1", &b->sin6_addr);
  r.naddrs = 2;
  if (cname != NULL) {
    snprintf(r.cnames[0], sizeof(r.cnames[0]), "%s", cname);
    r.ncnames = 1;
  }
  r.ttl = ttl;
  return r;
}

static void put(const char *name, enum dns_status status, const struct dns_result *r,
                uint64_t now) {
  struct dnscache_waitlist notify;
  cr_assert_eq(dnscache_complete(cache, name, status, r, now, &notify), 0);
  cr_assert_null(notify.head);
}

/* Looks NAME up without waiting; returns the state, fills *status / *out. */
static enum dnscache_state peek(const char *name, uint64_t now, enum dns_status *status,
                                struct dns_result *out) {
  enum dnscache_state st;
  cr_assert_eq(dnscache_lookup(cache, name, 443, now, NULL, &st, status, out), 0);
  return st;
}

static bool cached(const char *name, uint64_t now) {
  enum dns_status s;
  return peek(name, now, &s, NULL) == DNSCACHE_HIT;
}

static struct dnscache_stats stats(void) {
  struct dnscache_stats s;
  dnscache_stats(cache, &s);
  return s;
}

Test(dnscache, hit_returns_the_answer_with_the_asked_port_and_ttl_left) {
  struct dns_result r = answer(7, 60, "edge.example.net"), out;
  enum dns_status s;
  put("dnl-01.geo.example.com", DNS_OK, &r, 1000);
  cr_assert_eq(peek("DNL-01.geo.example.com.", 1000 + 10 * SEC + 1, &s, &out), DNSCACHE_HIT);
  cr_expect_eq(s, DNS_OK);
  cr_assert_eq(out.naddrs, 2);
  const struct sockaddr_in *a = (const struct sockaddr_in *)&out.addrs[0];
  cr_expect_eq(a->sin_family, AF_INET);
  cr_expect_eq(ntohs(a->sin_port), 443);
  cr_expect_eq(((const uint8_t *)&a->sin_addr)[3], 7);
  const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&out.addrs[1];
  cr_expect_eq(b->sin6_family, AF_INET6);
  cr_expect_eq(ntohs(b->sin6_port), 443);
  cr_expect_eq(b->sin6_addr.s6_addr[15], 1);
  cr_assert_eq(out.ncnames, 1);
  cr_expect_str_eq(out.cnames[0], "edge.example.net");
  cr_expect_eq(out.ttl, 50, "seconds left, rounded up");
}

Test(dnscache, ttl_is_clamped_to_min_and_max) {
  struct dns_result low = answer(1, 0, NULL), high = answer(2, 86400, NULL);
  put("low.example", DNS_OK, &low, 0);
  put("high.example", DNS_OK, &high, 0);
  cr_expect(cached("low.example", 5 * SEC - 1));
  cr_expect_not(cached("low.example", 5 * SEC));
  cr_expect(cached("high.example", 3600 * SEC - 1));
  cr_expect_not(cached("high.example", 3600 * SEC));
}

Test(dnscache, entry_expires_at_its_ttl_and_is_counted) {
  struct dns_result r = answer(1, 20, NULL);
  put("a.example", DNS_OK, &r, 100);
  cr_expect(cached("a.example", 100 + 20 * SEC - 1));
  cr_expect_not(cached("a.example", 100 + 20 * SEC));
  struct dnscache_stats st = stats();
  cr_expect_eq(st.expired, 1);
  cr_expect_eq(st.entries, 0, "the stale entry is dropped");
  cr_expect_eq(st.hits, 1);
  cr_expect_eq(st.misses, 1);
}

Test(dnscache, negative_answers_are_kept_for_negative_ttl) {
  struct dns_result empty;
  memset(&empty, 0, sizeof(empty));
  enum dns_status s;
  struct dns_result out;
  put("gone.example", DNS_NXDOMAIN, NULL, 0);
  put("v6only.example", DNS_NODATA, &empty, 0);
  put("empty-ok.example", DNS_OK, &empty, 0);
  cr_assert_eq(peek("gone.example", 30 * SEC - 1, &s, &out), DNSCACHE_HIT);
  cr_expect_eq(s, DNS_NXDOMAIN);
  cr_expect_eq(out.naddrs, 0);
  cr_assert_eq(peek("v6only.example", 1, &s, &out), DNSCACHE_HIT);
  cr_expect_eq(s, DNS_NODATA);
  cr_assert_eq(peek("empty-ok.example", 1, &s, &out), DNSCACHE_HIT);
  cr_expect_eq(s, DNS_NODATA, "an OK answer without addresses is NODATA");
  cr_expect_not(cached("gone.example", 30 * SEC));
}

Test(dnscache, failures_are_not_kept) {
  put("slow.example", DNS_TIMEOUT, NULL, 0);
  put("broken.example", DNS_SERVFAIL, NULL, 0);
  put("odd.example", DNS_ERROR, NULL, 0);
  cr_expect_not(cached("slow.example", 1));
  cr_expect_not(cached("broken.example", 1));
  cr_expect_not(cached("odd.example", 1));
  cr_expect_eq(stats().stores, 0);
}

Test(dnscache, zero_negative_ttl_keeps_no_negative_answer) {
  struct dnscache_limits l = limits;
  l.negative_ttl_ms = 0;
  open_cache(&l);
  put("gone.example", DNS_NXDOMAIN, NULL, 0);
  cr_expect_not(cached("gone.example", 0));
}

Test(dnscache, least_recently_used_goes_first_when_full_by_count) {
  struct dnscache_limits l = limits;
  l.max_entries = 3;
  open_cache(&l);
  struct dns_result r = answer(1, 300, NULL);
  put("a.example", DNS_OK, &r, 0);
  put("b.example", DNS_OK, &r, 0);
  put("c.example", DNS_OK, &r, 0);
  cr_expect(cached("a.example", 1)); /* a is now the most recent */
  put("d.example", DNS_OK, &r, 2);
  cr_expect_not(cached("b.example", 3));
  cr_expect(cached("a.example", 3));
  cr_expect(cached("c.example", 3));
  cr_expect(cached("d.example", 3));
  cr_expect_eq(stats().evictions, 1);
  cr_expect_eq(stats().entries, 3);
}

Test(dnscache, least_recently_used_goes_first_when_full_by_bytes) {
  struct dns_result r = answer(1, 300, "a-rather-long-cname-target.cdn.example.net");
  put("probe.example", DNS_OK, &r, 0);
  size_t one = stats().bytes;
  struct dnscache_limits l = limits;
  l.max_bytes = one * 2 + one / 2; /* two fit, three do not */
  open_cache(&l);
  put("a.example", DNS_OK, &r, 0);
  put("b.example", DNS_OK, &r, 0);
  put("c.example", DNS_OK, &r, 0);
  cr_expect_not(cached("a.example", 1));
  cr_expect(cached("b.example", 1));
  cr_expect(cached("c.example", 1));
  struct dnscache_stats st = stats();
  cr_expect_eq(st.evictions, 1);
  cr_expect_leq(st.bytes, l.max_bytes);
}

Test(dnscache, answer_larger_than_the_memory_bound_is_not_kept) {
  struct dnscache_limits l = limits;
  l.max_bytes = 64;
  open_cache(&l);
  struct dns_result r = answer(1, 300, NULL);
  put("a.example", DNS_OK, &r, 0);
  cr_expect_not(cached("a.example", 1));
  cr_expect_eq(stats().bytes, 0);
}

Test(dnscache, concurrent_lookups_share_one_query_and_a_cancelled_waiter_is_skipped) {
  struct dnscache_waiter w1 = {0}, w2 = {0}, w3 = {0};
  enum dnscache_state st;
  enum dns_status s;
  cr_assert_eq(dnscache_lookup(cache, "s01.upd.example", 443, 0, &w1, &st, &s, NULL), 0);
  cr_expect_eq(st, DNSCACHE_MISS, "the first asker starts the query");
  cr_assert_eq(dnscache_lookup(cache, "S01.upd.example", 80, 1, &w2, &st, &s, NULL), 0);
  cr_expect_eq(st, DNSCACHE_PENDING);
  cr_assert_eq(dnscache_lookup(cache, "s01.upd.example.", 443, 2, &w3, &st, &s, NULL), 0);
  cr_expect_eq(st, DNSCACHE_PENDING);
  cr_expect_eq(stats().pending, 1);
  dnscache_detach(&w2); /* its connection went away */
  dnscache_detach(&w2);
  cr_expect_null(w2.list);

  struct dnscache_waitlist notify;
  struct dns_result r = answer(4, 60, NULL);
  cr_assert_eq(dnscache_complete(cache, "s01.upd.example", DNS_OK, &r, 10, &notify), 0);
  cr_expect_eq(dnscache_waitlist_pop(&notify), &w1);
  cr_expect_null(w1.list);
  cr_expect_eq(dnscache_waitlist_pop(&notify), &w3);
  cr_expect_null(dnscache_waitlist_pop(&notify));
  cr_expect(cached("s01.upd.example", 11), "the answer is kept for later askers");
  struct dnscache_stats stt = stats();
  cr_expect_eq(stt.misses, 1);
  cr_expect_eq(stt.joins, 2);
  cr_expect_eq(stt.pending, 0);
}

Test(dnscache, a_waiter_may_detach_another_while_they_are_notified) {
  struct dnscache_waiter w1 = {0}, w2 = {0};
  enum dnscache_state st;
  enum dns_status s;
  cr_assert_eq(dnscache_lookup(cache, "a.example", 443, 0, &w1, &st, &s, NULL), 0);
  cr_assert_eq(dnscache_lookup(cache, "a.example", 443, 0, &w2, &st, &s, NULL), 0);
  struct dnscache_waitlist notify;
  cr_assert_eq(dnscache_complete(cache, "a.example", DNS_TIMEOUT, NULL, 5, &notify), 0);
  cr_expect_eq(dnscache_waitlist_pop(&notify), &w1);
  dnscache_detach(&w2); /* w1's callback closed w2's connection */
  cr_expect_null(dnscache_waitlist_pop(&notify));
  enum dnscache_state again;
  cr_assert_eq(dnscache_lookup(cache, "a.example", 443, 6, NULL, &again, &s, NULL), 0);
  cr_expect_eq(again, DNSCACHE_MISS, "a timeout is not kept: the next asker queries again");
}

Test(dnscache, answer_outlives_all_its_waiters) {
  struct dnscache_waiter w = {0};
  enum dnscache_state st;
  enum dns_status s;
  cr_assert_eq(dnscache_lookup(cache, "a.example", 443, 0, &w, &st, &s, NULL), 0);
  dnscache_detach(&w);
  struct dnscache_waitlist notify;
  struct dns_result r = answer(1, 60, NULL);
  cr_assert_eq(dnscache_complete(cache, "a.example", DNS_OK, &r, 1, &notify), 0);
  cr_expect_null(notify.head);
  cr_expect(cached("a.example", 2));
}

Test(dnscache, free_detaches_waiters_still_attached) {
  struct dnscache_waiter w = {0};
  enum dnscache_state st;
  enum dns_status s;
  cr_assert_eq(dnscache_lookup(cache, "a.example", 443, 0, &w, &st, &s, NULL), 0);
  cr_assert_not_null(w.list);
  dnscache_free(cache);
  cache = NULL;
  cr_expect_null(w.list);
}

Test(dnscache, counters_add_up) {
  struct dns_result r = answer(1, 60, NULL);
  put("a.example", DNS_OK, &r, 0);
  cached("a.example", 1);
  cached("a.example", 2);
  cached("b.example", 3);
  struct dnscache_stats st = stats();
  cr_expect_eq(st.hits, 2);
  cr_expect_eq(st.misses, 1);
  cr_expect_eq(st.stores, 1);
  cr_expect_eq(st.entries, 1);
  cr_expect_gt(st.bytes, 0);
  cr_expect_gt(st.table_bytes, 0);
}

Test(dnscache, rejects_bad_names_and_limits) {
  enum dnscache_state st;
  enum dns_status s;
  char longname[300];
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  cr_expect_eq(dnscache_lookup(cache, "", 443, 0, NULL, &st, &s, NULL), -EINVAL);
  cr_expect_eq(dnscache_lookup(cache, ".", 443, 0, NULL, &st, &s, NULL), -EINVAL);
  cr_expect_eq(dnscache_lookup(cache, longname, 443, 0, NULL, &st, &s, NULL), -EINVAL);
  struct dnscache_limits l = limits;
  struct dnscache *c = NULL;
  l.min_ttl_ms = l.max_ttl_ms + 1;
  cr_expect_eq(dnscache_new(&l, &c), -EINVAL);
}

Test(dnscache, zero_entries_keeps_nothing_but_still_coalesces) {
  struct dnscache_limits l = limits;
  l.max_entries = 0;
  open_cache(&l);
  struct dnscache_waiter w1 = {0}, w2 = {0};
  enum dnscache_state st;
  enum dns_status s;
  cr_assert_eq(dnscache_lookup(cache, "a.example", 443, 0, &w1, &st, &s, NULL), 0);
  cr_assert_eq(dnscache_lookup(cache, "a.example", 443, 0, &w2, &st, &s, NULL), 0);
  cr_expect_eq(st, DNSCACHE_PENDING);
  struct dnscache_waitlist notify;
  struct dns_result r = answer(1, 60, NULL);
  cr_assert_eq(dnscache_complete(cache, "a.example", DNS_OK, &r, 1, &notify), 0);
  cr_expect_eq(dnscache_waitlist_pop(&notify), &w1);
  cr_expect_eq(dnscache_waitlist_pop(&notify), &w2);
  cr_expect_not(cached("a.example", 2));
}
