/* The config suites' fixture: a temporary directory for config and vendor
 * files, the loaded config, and helpers that load text and check verdicts
 * and exact error messages. */
#ifndef EMBARGO_TESTS_UNIT_CONFIG_FIXTURE_H
#define EMBARGO_TESTS_UNIT_CONFIG_FIXTURE_H

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/timefmt.h"
/* 2024-07-20T00:00:00-04:00 and 2024-09-29T00:00:00-04:00 */
#define NEW_INSTALLS_CUTOFF INT64_C(1721448000)
#define UPDATES_CUTOFF INT64_C(1727582400)

static char dir[64];
static char files[16][128];
static size_t nfiles;
static struct config cfg;
static char err[512];

static inline void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/embargo-config-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  nfiles = 0;
  memset(&cfg, 0, sizeof(cfg));
  err[0] = '\0';
}

static inline void teardown(void) {
  config_free(&cfg);
  for (size_t i = 0; i < nfiles; i++)
    unlink(files[i]);
  rmdir(dir);
}

/* Writes TEXT to DIR/NAME; returns the path (static storage). */
static inline const char *put(const char *name, const char *text) {
  cr_assert_lt(nfiles, 16);
  char *path = files[nfiles++];
  snprintf(path, 128, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static inline int load(const char *text) {
  return config_load_file(&cfg, put("main.yaml", text), err, sizeof(err));
}

/* Loads TEXT as main.yaml and expects the error FMT, in which each %s is
 * the temporary directory. */
static inline void expect_error(const char *text, const char *fmt, ...) {
  char want[512], expanded[512];
  size_t o = 0;
  for (const char *p = fmt; *p && o < sizeof(expanded) - 1; p++) {
    if (p[0] == '@') { /* '@' stands for the directory */
      o += (size_t)snprintf(expanded + o, sizeof(expanded) - o, "%s", dir);
      continue;
    }
    expanded[o++] = *p;
  }
  expanded[o] = '\0';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(want, sizeof(want), expanded, ap);
  va_end(ap);
  int rc = load(text);
  cr_assert_eq(rc, EMB_ECONFIG, "got %s (%s), expected: %s", err_name(rc), err, want);
  cr_expect_str_eq(err, want);
  cr_expect_null(cfg.policy, "a failed load leaves nothing to free");
  cr_expect_null(cfg.clients);
}

static inline struct verdict decide(const char *name, int64_t now) {
  struct host h;
  struct verdict v;
  cr_assert_eq(host_normalise(name, strlen(name), &h), 0);
  struct facts f = {.host = &h};
  policy_decide(cfg.policy, &f, now, &v);
  return v;
}

static inline void expect_action(const char *name, int64_t now, enum action want) {
  enum action got = decide(name, now).action;
  cr_expect_eq(got, want, "%s at %lld: got %s, want %s", name, (long long)now,
               action_name(got), action_name(want));
}

static inline const void *client(const char *ip) {
  uint8_t addr[16];
  int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
  cr_assert_eq(inet_pton(family, ip, addr), 1);
  return netmatch_lookup(cfg.clients, family, addr, NULL);
}

static inline void expect_cutoff(const struct category *c, const char *when) {
  char buf[32];
  cr_assert_not_null(c);
  rfc3339_format(c->cutoff, buf, sizeof(buf));
  cr_expect_str_eq(buf, when, "%s", c->name);
  cr_expect_eq(c->before, ACTION_LOG);
  cr_expect_eq(c->after, ACTION_DENY);
}

/* A vendor list with one category whose body is BODY, loaded via main.yaml. */
static inline void expect_vendor_error(const char *body, const char *fmt, ...) {
  char text[1024], want[512];
  snprintf(text, sizeof(text),
           "vendor: acme\ncategories:\n  updates:\n%s", body);
  put("acme.yaml", text);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(want, sizeof(want), fmt, ap);
  va_end(ap);
  expect_error("vendors:\n  - file: acme.yaml\n", want);
}

#endif
