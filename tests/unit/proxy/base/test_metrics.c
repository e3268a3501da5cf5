/* Metrics exposition: counters, cumulative histogram buckets, decision label
 * sets, policy figures and per-worker figures, rendered from a view of a
 * proxy with no connections. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "filters/policy.h"
#include "proxy/base/http1.h"
#include "proxy/base/metrics.h"

static struct metrics_view view;
static struct policy *policy;
static struct obuf out;

static void setup(void) {
  memset(&view, 0, sizeof(view));
  policy = policy_new();
  policy_set_version(policy, "0123456789abcdef");
  view.policy = policy;
  view.policy_loaded_at = 1727582400;
  view.nworkers = 2;
  metrics_set_workers(2);
}

static void teardown(void) {
  policy_unref(policy);
  obuf_free(&out);
}

TestSuite(metrics, .init = setup, .fini = teardown);

static const char *render(void) {
  obuf_free(&out);
  metrics_render(&out, &view);
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
  struct vendor *v = policy_add_vendor(policy, "acme", "Acme", NULL, (struct origin){0}, &err);
  cr_assert_not_null(v);
  struct category *c = policy_add_category(policy, v, "updates", 0, ACTION_LOG, ACTION_DENY,
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

struct worker_args {
  size_t worker;
  unsigned accepts, requests;
};

static void *count_as_worker(void *arg) {
  struct worker_args *a = arg;
  metrics_use_worker_shard(a->worker);
  for (unsigned i = 0; i < a->accepts; i++)
    metrics_count_accept(0);
  metrics_add(METRIC_REQ_FORWARD, a->requests);
  return NULL;
}

Test(metrics, each_worker_counts_in_its_own_shard_and_the_totals_sum_them) {
  struct worker_args a[2] = {{0, 3, 5}, {1, 4, 7}};
  pthread_t t[2];
  view.nlisteners = 1;
  view.listeners[0] = (struct metrics_listener){.name = "127.0.0.1:3128", .active = 2};
  view.worker_active[0] = 1;
  view.worker_active[1] = 1;
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, count_as_worker, &a[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  const char *txt = render();
  cr_expect(strstr(txt, "\nembargo_workers 2\n") != NULL, "%s", txt);
  cr_expect(strstr(txt, "\nembargo_worker_connections_total{worker=\"0\"} 3\n") != NULL, "%s", txt);
  cr_expect(strstr(txt, "\nembargo_worker_connections_total{worker=\"1\"} 4\n") != NULL);
  cr_expect(strstr(txt, "\nembargo_worker_requests_total{worker=\"0\"} 5\n") != NULL);
  cr_expect(strstr(txt, "\nembargo_worker_requests_total{worker=\"1\"} 7\n") != NULL);
  cr_expect(strstr(txt, "\nembargo_worker_connections_active{worker=\"1\"} 1\n") != NULL);
  cr_expect(strstr(txt, "embargo_client_connections_total{listener=\"127.0.0.1:3128\",mode=\"proxy\"} 7\n") != NULL, "%s", txt);
  cr_expect(strstr(txt, "embargo_client_connections_active{listener=\"127.0.0.1:3128\",mode=\"proxy\"} 2\n") != NULL);
  cr_expect(strstr(txt, "\nembargo_requests_total{kind=\"forward\"} 12\n") != NULL, "%s", txt);
}
