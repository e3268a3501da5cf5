/* Metrics exposition: counters, cumulative histogram buckets, decision label
 * sets, and policy figures, rendered from a server with no connections. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <string.h>

#include "filters/policy.h"
#include "proxy/http1.h"
#include "proxy/metrics.h"
#include "proxy/server.h"

static struct server srv;
static struct obuf out;

static void setup(void) {
  memset(&srv, 0, sizeof(srv));
  srv.policy = policy_new();
  policy_set_version(srv.policy, "0123456789abcdef");
  srv.policy_loaded_at = 1727582400;
}

static void teardown(void) {
  policy_unref(srv.policy);
  obuf_free(&out);
}

TestSuite(metrics, .init = setup, .fini = teardown);

static const char *render(void) {
  obuf_free(&out);
  metrics_render(&out, &srv);
  obuf_add(&out, "", 1);
  cr_assert(!out.failed);
  return out.data;
}

Test(metrics, counters_add_up) {
  metrics_add(METRIC_REQ_FORWARD, 3);
  metrics_add(METRIC_REQ_FORWARD, 2);
  metrics_add(METRIC_RELOAD_FAILED, 1);
  const char *t = render();
  cr_expect(strstr(t, "\nembargo_requests_total{kind=\"forward\"} 5\n") != NULL, "%s", t);
  cr_expect(strstr(t, "\nembargo_requests_total{kind=\"connect\"} 0\n") != NULL);
  cr_expect(strstr(t, "\nembargo_reloads_total{result=\"failure\"} 1\n") != NULL);
  cr_expect(strstr(t, "# TYPE embargo_requests_total counter\n") != NULL);
}

Test(metrics, histogram_buckets_are_cumulative) {
  metrics_observe_ms(METRIC_H_CONNECT, 0);
  metrics_observe_ms(METRIC_H_CONNECT, 7);
  metrics_observe_ms(METRIC_H_CONNECT, 60000);
  const char *t = render();
  cr_expect(strstr(t, "embargo_upstream_connect_seconds_bucket{le=\"0.001\"} 1\n") != NULL, "%s",
            t);
  cr_expect(strstr(t, "embargo_upstream_connect_seconds_bucket{le=\"0.005\"} 1\n") != NULL);
  cr_expect(strstr(t, "embargo_upstream_connect_seconds_bucket{le=\"0.01\"} 2\n") != NULL);
  cr_expect(strstr(t, "embargo_upstream_connect_seconds_bucket{le=\"10\"} 2\n") != NULL);
  cr_expect(strstr(t, "embargo_upstream_connect_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
  cr_expect(strstr(t, "embargo_upstream_connect_seconds_sum 60.007\n") != NULL);
  cr_expect(strstr(t, "embargo_upstream_connect_seconds_count 3\n") != NULL);
}

Test(metrics, decisions_by_label_set) {
  int err = 0;
  struct vendor *v = policy_add_vendor(srv.policy, "acme", "Acme", NULL, (struct origin){0}, &err);
  cr_assert_not_null(v);
  struct category *c = policy_add_category(srv.policy, v, "updates", 0, ACTION_LOG, ACTION_DENY,
                                           (struct origin){0}, &err);
  cr_assert_not_null(c);
  struct rule r = {.kind = RULE_HOST, .pattern = "x", .vendor = v, .category = c};
  struct verdict d = {.action = ACTION_DENY, .on = MATCH_HOST, .rule = &r};
  struct verdict l = {.action = ACTION_LOG, .on = MATCH_SNI, .rule = &r};
  struct verdict none = {.action = ACTION_ALLOW};
  metrics_count_decision(&d);
  metrics_count_decision(&d);
  metrics_count_decision(&l);
  metrics_count_decision(&none);
  const char *t = render();
  cr_expect(strstr(t, "embargo_decisions_total{vendor=\"acme\",category=\"updates\",action=\"deny\","
                      "matched_on=\"host\"} 2\n") != NULL,
            "%s", t);
  cr_expect(strstr(t, "embargo_decisions_total{vendor=\"acme\",category=\"updates\",action=\"log\","
                      "matched_on=\"sni\"} 1\n") != NULL);
}

Test(metrics, policy_figures) {
  const char *t = render();
  cr_expect(strstr(t, "embargo_policy_info{version=\"0123456789abcdef\"} 1\n") != NULL, "%s", t);
  cr_expect(strstr(t, "embargo_policy_loaded_timestamp_seconds 1727582400\n") != NULL);
  cr_expect(strstr(t, "embargo_policy_entries{kind=\"host\"} 0\n") != NULL);
}
