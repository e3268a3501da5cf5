/* Unit tests for the answers connections keep (proxy/base/dns.c,
 * struct dns_answer): one allocation sized to what it holds, the CNAME
 * chain and addresses as the lookup gave them (or one address in their
 * place), shared by reference rather than copied. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "filters/normalise.h"
#include "proxy/base/dns.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port) {
  struct sockaddr_storage ss;
  struct sockaddr_in *in = (struct sockaddr_in *)&ss;
  memset(&ss, 0, sizeof(ss));
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  cr_assert_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
  return ss;
}

static struct dns_result two_with_chain(void) {
  struct dns_result r;
  memset(&r, 0, sizeof(r));
  r.addrs[r.naddrs++] = v4("192.0.2.1", 443);
  r.addrs[r.naddrs++] = v4("192.0.2.2", 443);
  snprintf(r.cnames[r.ncnames++], sizeof(r.cnames[0]), "edge.cdn.test");
  snprintf(r.cnames[r.ncnames++], sizeof(r.cnames[0]), "a1.edge.cdn.test");
  r.ttl = 300;
  return r;
}

static uint16_t port_of(const struct sockaddr_storage *ss) {
  return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

Test(dns_answer, keeps_the_chain_and_the_addresses_in_order) {
  struct dns_result r = two_with_chain();
  struct dns_answer *a = dns_answer_new(&r, NULL, true);
  cr_assert_not_null(a);
  cr_expect_eq(a->refs, 1);
  cr_expect_eq(a->ttl, 300);
  cr_assert_eq(a->naddrs, 2);
  cr_expect_eq(memcmp(&a->addrs[0], &r.addrs[0], sizeof(r.addrs[0])), 0);
  cr_expect_eq(memcmp(&a->addrs[1], &r.addrs[1], sizeof(r.addrs[1])), 0);
  cr_assert_eq(a->ncnames, 2);
  cr_expect_str_eq(a->cnames[0], "edge.cdn.test");
  cr_expect_str_eq(a->cnames[1], "a1.edge.cdn.test");
  dns_answer_unref(a);
}

Test(dns_answer, is_sized_to_what_it_holds_not_to_the_largest_answer) {
  struct dns_result r = two_with_chain();
  struct dns_answer *a = dns_answer_new(&r, NULL, true);
  cr_assert_not_null(a);
  /* Two addresses and two short names: a few hundred bytes, where a
   * struct dns_result is sized for 16 addresses and 16 names of 253. */
  cr_expect_lt(malloc_usable_size(a), 512, "%zu bytes", malloc_usable_size(a));
  cr_expect_gt(sizeof(struct dns_result), 4 * malloc_usable_size(a));
  dns_answer_unref(a);
}

Test(dns_answer, one_address_in_place_of_the_answers_keeps_the_chain) {
  struct dns_result r = two_with_chain();
  struct sockaddr_storage orig = v4("203.0.113.5", 80);
  struct dns_answer *a = dns_answer_new(&r, (const struct sockaddr *)&orig, false);
  struct dns_answer *none = dns_answer_new(NULL, (const struct sockaddr *)&orig, false);
  struct dns_answer *again;
  cr_assert_not_null(a);
  cr_assert_not_null(none);
  cr_assert_eq(a->naddrs, 1);
  cr_expect_eq(memcmp(&a->addrs[0], &orig, sizeof(struct sockaddr_in)), 0);
  cr_expect_eq(a->ncnames, 2);
  cr_expect_eq(none->naddrs, 1);
  cr_expect_eq(none->ncnames, 0);
  /* The original destination first, then the name's own addresses (what a
   * parent proxy asked for the name may reach). */
  struct dns_answer *both = dns_answer_new(&r, (const struct sockaddr *)&orig, true);
  cr_assert_not_null(both);
  cr_assert_eq(both->naddrs, 3);
  cr_expect_eq(memcmp(&both->addrs[0], &orig, sizeof(struct sockaddr_in)), 0);
  cr_expect_eq(memcmp(&both->addrs[1], &r.addrs[0], sizeof(r.addrs[0])), 0);
  cr_expect_eq(memcmp(&both->addrs[2], &r.addrs[1], sizeof(r.addrs[1])), 0);
  cr_expect_str_eq(both->cnames[1], "a1.edge.cdn.test");
  dns_answer_unref(both);
  /* A retry to one address already judged keeps the evidence it had. */
  again = dns_answer_redial(a, (const struct sockaddr *)&r.addrs[1]);
  cr_assert_not_null(again);
  cr_assert_eq(again->naddrs, 1);
  cr_expect_eq(port_of(&again->addrs[0]), 443);
  cr_expect_eq(memcmp(&again->addrs[0], &r.addrs[1], sizeof(struct sockaddr_in)), 0);
  cr_assert_eq(again->ncnames, 2);
  cr_expect_str_eq(again->cnames[1], "a1.edge.cdn.test");
  cr_expect_neq(again->cnames[1], a->cnames[1], "its own copy of the chain");
  dns_answer_unref(again);
  dns_answer_unref(none);
  dns_answer_unref(a);
}

Test(dns_answer, a_literal_is_its_own_address_with_its_port) {
  struct host h;
  struct dns_answer *a;
  cr_assert_eq(authority_parse("[2001:db8::7]:8443", 18, 443, &h), 0);
  cr_assert_not_null(a = dns_answer_literal(&h));
  cr_assert_eq(a->naddrs, 1);
  cr_expect_eq(a->addrs[0].ss_family, AF_INET6);
  cr_expect_eq(ntohs(((const struct sockaddr_in6 *)&a->addrs[0])->sin6_port), 8443);
  cr_expect_eq(a->ncnames, 0);
  dns_answer_unref(a);
}

Test(dns_answer, is_shared_by_reference_and_freed_with_the_last) {
  struct dns_result r = two_with_chain();
  struct dns_answer *a = dns_answer_new(&r, NULL, true);
  cr_assert_not_null(a);
  cr_expect_eq(dns_answer_ref(a), a, "the same answer, not a copy");
  cr_expect_eq(a->refs, 2);
  dns_answer_unref(a);
  cr_expect_eq(a->refs, 1);
  cr_expect_str_eq(a->cnames[0], "edge.cdn.test", "still readable by the other owner");
  dns_answer_unref(a); /* ASan reports a leak or a double free */
  dns_answer_ref(NULL);
  dns_answer_unref(NULL);
}
