/* Vendor list freshness (proxy/freshness.c): ages by the policy clock, the
 * stale flag past max_age, and the warning on standard error at most once
 * a day unless the set of stale lists changes. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "filters/policy.h"
#include "proxy/base/freshness.h"
#include "proxy/process/freshness_log.h"
#include "tests/unit/config_fixture.h"

TestSuite(freshness, .init = setup, .fini = teardown);

#define REVIEWED INT64_C(1748736000) /* 2025-06-01T00:00:00Z */
#define DAY      INT64_C(86400)
#define HOUR_MS  UINT64_C(3600000)

static const struct vendor *load_acme(const char *extra) {
  char list[512];
  snprintf(list, sizeof(list),
           "vendor: acme\n%scategories:\n  updates:\n    cutoff: 2024-09-29T00:00:00Z\n"
           "    hosts: [upd.acme.test]\n",
           extra);
  put("acme.yaml", list);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n"), 0, "%s", err);
  return policy_find_vendor(cfg.policy, "acme");
}

Test(freshness, age_and_staleness_by_the_clock_given) {
  const struct vendor *v = load_acme("reviewed: 2025-06-01\nmax_age: 90d\n");
  struct freshness f;
  freshness_of(v, REVIEWED + 10 * DAY, &f);
  cr_expect(f.known && f.limited && !f.stale);
  cr_expect_eq(f.age, 10 * DAY);
  cr_expect_eq(f.stale_from, REVIEWED + 90 * DAY);
  freshness_of(v, REVIEWED + 90 * DAY, &f);
  cr_expect(f.stale, "stale from reviewed + max_age on");
  freshness_of(v, REVIEWED - DAY, &f);
  cr_expect_eq(f.age, -DAY);
  cr_expect(!f.stale);
}

Test(freshness, a_list_without_reviewed_has_no_age) {
  const struct vendor *v = load_acme("");
  struct freshness f;
  freshness_of(v, REVIEWED, &f);
  cr_expect(!f.known && !f.limited && !f.stale);
  cr_expect(!freshness_any_stale(cfg.policy, REVIEWED + 1000 * DAY, NULL, 0));
}

Test(freshness, a_list_from_a_newer_bundle_is_as_old_as_the_bundle) {
  struct vendor *v = (struct vendor *)load_acme("reviewed: 2025-06-01\nmax_age: 90d\n");
  struct freshness f;
  char text[600];
  v->bundle_serial = 7;
  v->bundle_created = REVIEWED + 60 * DAY; /* republished, unchanged, two months on */
  freshness_of(v, REVIEWED + 100 * DAY, &f);
  cr_expect(f.known && !f.stale, "fresh for max_age after the bundle was made");
  cr_expect_eq(f.since, REVIEWED + 60 * DAY);
  cr_expect_eq(f.age, 40 * DAY);
  freshness_of(v, REVIEWED + 150 * DAY, &f);
  cr_expect(f.stale);
  freshness_describe(v, REVIEWED + 150 * DAY, text, sizeof(text));
  cr_expect(strstr(text, "published 2025-07-31T00:00:00Z (bundle 7), max_age 90d") != NULL, "%s",
            text);
  v->bundle_created = REVIEWED - DAY; /* an older bundle does not make the list older */
  freshness_of(v, REVIEWED + 10 * DAY, &f);
  cr_expect_eq(f.age, 10 * DAY);
}

Test(freshness, describes_a_stale_list) {
  const struct vendor *v = load_acme("reviewed: 2025-06-01\nmax_age: 90d\n");
  char text[600], want[600];
  freshness_describe(v, REVIEWED + 100 * DAY, text, sizeof(text));
  snprintf(want, sizeof(want),
           "vendor list acme (%s/acme.yaml) is stale: reviewed 2025-06-01T00:00:00Z, max_age 90d, "
           "past it since 2025-08-30T00:00:00Z; still enforced",
           dir);
  cr_expect_str_eq(text, want);
  cr_expect(freshness_any_stale(cfg.policy, REVIEWED + 100 * DAY, text, sizeof(text)));
  cr_expect_str_eq(text, want);
}

/* Lines written to standard error by freshness_log_stale(NOW, NOW_MS). */
static int warnings_at(int64_t now, uint64_t now_ms, struct freshness_log *st) {
  char path[96], buf[4096];
  int saved = dup(STDERR_FILENO), fd, lines = 0;
  ssize_t n;
  snprintf(path, sizeof(path), "%s/stderr", dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  cr_assert(fd >= 0 && saved >= 0);
  dup2(fd, STDERR_FILENO);
  freshness_log_stale(cfg.policy, now, now_ms, st);
  dup2(saved, STDERR_FILENO);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  unlink(path);
  buf[n > 0 ? n : 0] = '\0';
  for (char *p = buf; (p = strstr(p, "is stale")) != NULL; p++)
    lines++;
  return lines;
}

Test(freshness, the_warning_repeats_daily_and_when_the_set_changes) {
  struct freshness_log st = {0};
  load_acme("reviewed: 2025-06-01\nmax_age: 90d\n");
  cr_expect_eq(warnings_at(REVIEWED + 89 * DAY, 1000, &st), 0, "not stale yet");
  cr_expect_eq(warnings_at(REVIEWED + 91 * DAY, 2000, &st), 1, "stale: warned at once");
  cr_expect_eq(warnings_at(REVIEWED + 91 * DAY, 2000 + HOUR_MS, &st), 0, "once a day");
  cr_expect_eq(warnings_at(REVIEWED + 92 * DAY, 2000 + 23 * HOUR_MS, &st), 0);
  cr_expect_eq(warnings_at(REVIEWED + 92 * DAY, 2000 + 24 * HOUR_MS, &st), 1, "a day later");
  /* Fresh again (a reviewed list reloaded), then stale again: news. */
  cr_expect_eq(warnings_at(REVIEWED, 3000 + 24 * HOUR_MS, &st), 0);
  cr_expect_eq(warnings_at(REVIEWED + 91 * DAY, 4000 + 24 * HOUR_MS, &st), 1);
}
