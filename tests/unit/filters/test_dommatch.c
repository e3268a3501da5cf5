/* Unit tests for filters/dommatch.c: pattern syntax, matching and the
 * most-specific-wins order. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "filters/dommatch.h"
#include "filters/err.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct dommatch *m;

static void setup(void) { cr_assert_not_null(m = dommatch_new()); }
static void teardown(void) { dommatch_free(m); }

TestSuite(dommatch, .init = setup, .fini = teardown);

/* Adds each pattern with its own text as DATA, so a lookup returns the
 * winning pattern. */
static void add_all(const char *const *patterns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int err = dommatch_add(m, patterns[i], strlen(patterns[i]), (void *)patterns[i]);
    cr_assert_eq(err, 0, "dommatch_add(\"%s\") = %s", patterns[i], err_name(err));
  }
}

struct lookup_case {
  const char *name;
  const char *want; /* winning pattern, NULL for no match */
};

static void expect_lookups(const struct lookup_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *got = dommatch_lookup(m, cases[i].name, strlen(cases[i].name));
    if (cases[i].want == NULL)
      cr_expect_null(got, "\"%s\" matched \"%s\", want no match", cases[i].name, got);
    else
      cr_expect(got && strcmp(got, cases[i].want) == 0, "\"%s\" matched \"%s\", want \"%s\"",
                cases[i].name, got ? got : "(none)", cases[i].want);
  }
}

struct reject_case {
  const char *pattern;
  const char *why;
};

Test(dommatch, check_rejects_every_malformed_pattern_with_a_reason) {
  static const struct reject_case cases[] = {
      {"", "empty pattern"},
      {"*", "a bare '*' or '.' would match every name"},
      {".", "a bare '*' or '.' would match every name"},
      {"Example.com", "uppercase letter (patterns are lowercase)"},
      {"example.COM", "uppercase letter (patterns are lowercase)"},
      {"example.com.", "trailing dot"},
      {"*.", "trailing dot"},
      {"..", "trailing dot"},
      {"example..com", "empty label"},
      {"..example.com", "empty label"},
      {"*..com", "empty label"},
      {".*.com", "a '*.' wildcard is only allowed as the first label"},
      {"*.*.com", "a '*.' wildcard is only allowed as the first label"},
      {"a.*.com", "a '*.' wildcard is only allowed as the first label"},
      {"example.*", "a '*.' wildcard is only allowed as the first label"},
      {"exa mple.com", "character outside [a-z0-9-_.*?[]]"},
      {"example.com/", "character outside [a-z0-9-_.*?[]]"},
      {"example.com:80", "character outside [a-z0-9-_.*?[]]"},
      {"k\xc3\xa4spersky.com", "character outside [a-z0-9-_.*?[]]"},
      {"[!a]x.com", "character outside [a-z0-9-_.*?[]]"},
      {"s[0-9.com", "unbalanced '[' in a label"},
      {"s[0-9.]com", "unbalanced '[' in a label"},
      {"s0-9].com", "unbalanced ']' in a label"},
      {"s[[0-9]].com", "'[', '*' or '?' inside a '[...]' set"},
      {"s[a*].com", "'[', '*' or '?' inside a '[...]' set"},
      {"s[a-?].com", "'[', '*' or '?' inside a '[...]' set"},
      {"s[].com", "empty '[]' set"},
      {"s[9-0].com", "reversed range in a '[...]' set"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const char *why = NULL;
    const char *p = cases[i].pattern;
    cr_expect_eq(dommatch_check(p, strlen(p), &why), EMB_EBADPATTERN, "\"%s\" accepted", p);
    cr_expect(why && strcmp(why, cases[i].why) == 0, "\"%s\": reason \"%s\", want \"%s\"", p,
              why ? why : "(none)", cases[i].why);
    cr_expect_eq(dommatch_add(m, p, strlen(p), NULL), EMB_EBADPATTERN, "\"%s\" added", p);
  }
  cr_expect_eq(dommatch_count(m), 0);
}

Test(dommatch, check_enforces_label_and_name_length_limits) {
  char buf[300];
  const char *why = NULL;

  memset(buf, 'a', 63);
  strcpy(buf + 63, ".com");
  cr_expect_eq(dommatch_check(buf, strlen(buf), NULL), 0, "63-character label");
  memset(buf, 'a', 64);
  strcpy(buf + 64, ".com");
  cr_expect_eq(dommatch_check(buf, strlen(buf), &why), EMB_EBADPATTERN);
  cr_expect_str_eq(why, "label longer than 63 characters");
  for (int i = 0; i < 4; i++) {
    memset(buf + i * 64, 'b', 63);
    buf[i * 64 + 63] = '.';
  }
  cr_expect_eq(dommatch_check(buf, 253, NULL), 0, "253-character pattern");
  cr_expect_eq(dommatch_check(buf, 254, &why), EMB_EBADPATTERN);
  cr_expect_str_eq(why, "pattern longer than 253 characters");
}

Test(dommatch, check_accepts_every_documented_form) {
  static const char *const ok[] = {
      "example.com",     "*.example.com", ".example.com",          "dnl-*.geo.example.com",
      "s[0-1][0-9].upd.example.com",      "?.example.com",         "a*b*c.example.com",
      "[-a].com",        "[a-].com",      "_dmarc.example.com",    "1.2.3.4",
      "**.com",          "com",           "*.com",                 "x.[a-c]*",
  };
  for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
    const char *why = NULL;
    cr_expect_eq(dommatch_check(ok[i], strlen(ok[i]), &why), 0, "\"%s\": %s", ok[i],
                 why ? why : "");
  }
}

Test(dommatch, exact_pattern_matches_only_that_name) {
  static const char *const patterns[] = {"example.com"};
  static const struct lookup_case cases[] = {
      {"example.com", "example.com"}, {"www.example.com", NULL}, {"com", NULL},
      {"notexample.com", NULL},       {"example.co", NULL},      {"example.com.evil", NULL},
      {"xexample.com", NULL},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, star_dot_matches_only_strict_subdomains) {
  static const char *const patterns[] = {"*.example.com"};
  static const struct lookup_case cases[] = {
      {"www.example.com", "*.example.com"},
      {"a.b.c.example.com", "*.example.com"},
      {"example.com", NULL},
      {"notexample.com", NULL},
      {"com", NULL},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, leading_dot_matches_name_and_subdomains) {
  static const char *const patterns[] = {".kaspersky.com"};
  static const struct lookup_case cases[] = {
      {"kaspersky.com", ".kaspersky.com"},
      {"dnl-01.geo.kaspersky.com", ".kaspersky.com"},
      {"notkaspersky.com", NULL},
      {"kaspersky.com.evil.net", NULL},
      {"com", NULL},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, globs_match_within_one_label_only) {
  static const char *const patterns[] = {
      "dnl-*.geo.example.com", "s[0-1][0-9].upd.example.com", "?x.example.com",
      "a*b*c.example.net", "[-_]z.example.org",
  };
  static const struct lookup_case cases[] = {
      {"dnl-01.geo.example.com", "dnl-*.geo.example.com"},
      {"dnl-.geo.example.com", "dnl-*.geo.example.com"},
      {"dnl-a.b.geo.example.com", NULL},
      {"dnl.geo.example.com", NULL},
      {"xdnl-1.geo.example.com", NULL},
      {"s07.upd.example.com", "s[0-1][0-9].upd.example.com"},
      {"s19.upd.example.com", "s[0-1][0-9].upd.example.com"},
      {"s20.upd.example.com", NULL},
      {"s1.upd.example.com", NULL},
      {"s100.upd.example.com", NULL},
      {"ax.example.com", "?x.example.com"},
      {"x.example.com", NULL},
      {"abx.example.com", NULL},
      {"abc.example.net", "a*b*c.example.net"},
      {"a-b-b-c.example.net", "a*b*c.example.net"},
      {"abcx.example.net", NULL},
      {"a.b.c.example.net", NULL},
      {"-z.example.org", "[-_]z.example.org"},
      {"_z.example.org", "[-_]z.example.org"},
      {"az.example.org", NULL},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

/* Labels are compared from the top down: the first difference decides. */
Test(dommatch, glob_in_upper_label_matches_any_branch_but_loses_to_exact_upper_label) {
  static const char *const patterns[] = {"upd.*-geo.example.com", "*.eu-geo.example.com"};
  static const struct lookup_case cases[] = {
      {"upd.us-geo.example.com", "upd.*-geo.example.com"},
      {"upd.eu-geo.example.com", "*.eu-geo.example.com"},
      {"x.eu-geo.example.com", "*.eu-geo.example.com"},
      {"x.us-geo.example.com", NULL},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, more_matched_labels_win) {
  static const char *const patterns[] = {
      ".example.com", "*.geo.example.com", "dnl-*.geo.example.com", "*.a.dnl-1.geo.example.com",
  };
  static const struct lookup_case cases[] = {
      {"www.example.com", ".example.com"},
      {"x.geo.example.com", "*.geo.example.com"},
      {"dnl-1.geo.example.com", "dnl-*.geo.example.com"},
      {"y.dnl-1.geo.example.com", "*.geo.example.com"},
      {"z.a.dnl-1.geo.example.com", "*.a.dnl-1.geo.example.com"},
      {"geo.example.com", ".example.com"},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, exact_beats_glob_beats_wildcard_at_equal_depth) {
  static const char *const patterns[] = {
      "*.example.com", "w*.example.com", "www.example.com", "ww?.example.com",
  };
  static const struct lookup_case cases[] = {
      {"www.example.com", "www.example.com"},
      {"wwx.example.com", "w*.example.com"}, /* equal classes: the first glob added wins */
      {"wide.example.com", "w*.example.com"},
      {"mail.example.com", "*.example.com"},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, exact_upper_label_beats_glob_upper_label) {
  static const char *const patterns[] = {"a*.e*.com", "a*.example.com", "abc.e*.com"};
  static const struct lookup_case cases[] = {
      {"abc.example.com", "a*.example.com"},
      {"abc.ebay.com", "abc.e*.com"},
      {"axe.ebay.com", "a*.e*.com"},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, exact_beats_leading_dot_on_the_name_itself) {
  static const char *const patterns[] = {".example.com", "example.com", "*.example.com"};
  static const struct lookup_case cases[] = {
      {"example.com", "example.com"},
      {"www.example.com", "*.example.com"},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, leading_dot_on_the_name_itself_beats_a_glob) {
  static const char *const patterns[] = {"ex*.com", ".example.com"};
  static const struct lookup_case cases[] = {
      {"example.com", ".example.com"},
      {"exodus.com", "ex*.com"},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, deeper_wildcard_beats_shallower_one) {
  static const char *const patterns[] = {"*.com", "*.kaspersky.com", ".geo.kaspersky.com"};
  static const struct lookup_case cases[] = {
      {"example.com", "*.com"},
      {"www.kaspersky.com", "*.kaspersky.com"},
      {"geo.kaspersky.com", ".geo.kaspersky.com"},
      {"a.geo.kaspersky.com", ".geo.kaspersky.com"},
      {"com", NULL},
  };
  add_all(patterns, ARRAY_LEN(patterns));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(dommatch, rejects_duplicates_and_keeps_the_first) {
  static const char *const first = "first", *const second = "second";

  cr_expect_eq(dommatch_add(m, "example.com", 11, (void *)first), 0);
  cr_expect_eq(dommatch_add(m, "example.com", 11, (void *)second), EMB_EDUPLICATE);
  cr_expect_eq(dommatch_add(m, "*.example.com", 13, (void *)first), 0);
  cr_expect_eq(dommatch_add(m, "*.example.com", 13, (void *)second), EMB_EDUPLICATE);
  cr_expect_eq(dommatch_add(m, ".example.com", 12, (void *)first), 0);
  cr_expect_eq(dommatch_add(m, ".example.com", 12, (void *)second), EMB_EDUPLICATE);
  cr_expect_eq(dommatch_add(m, "s?.example.com", 14, (void *)first), 0);
  cr_expect_eq(dommatch_add(m, "s?.example.com", 14, (void *)second), EMB_EDUPLICATE);
  cr_expect_eq(dommatch_count(m), 4);
  cr_expect_eq(dommatch_lookup(m, "example.com", 11), first);
  cr_expect_eq(dommatch_lookup(m, "s1.example.com", 14), first);
}

Test(dommatch, lookup_of_empty_or_oversized_name_finds_nothing) {
  char buf[300];

  cr_assert_eq(dommatch_add(m, "*.com", 5, (void *)"x"), 0);
  cr_expect_null(dommatch_lookup(m, "", 0));
  memset(buf, 'a', sizeof(buf));
  memcpy(buf + sizeof(buf) - 4, ".com", 4);
  cr_expect_null(dommatch_lookup(m, buf, sizeof(buf)));
  cr_expect_not_null(dommatch_lookup(m, buf + sizeof(buf) - 253, 253));
}

Test(dommatch, empty_matcher_matches_nothing) {
  cr_expect_null(dommatch_lookup(m, "example.com", 11));
  cr_expect_eq(dommatch_count(m), 0);
}

Test(dommatch, free_accepts_null) { dommatch_free(NULL); }

Test(dommatch, finds_every_one_of_many_patterns_after_growth) {
  static char names[20000][24];
  const size_t n = ARRAY_LEN(names);

  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], sizeof(names[i]), "h%zu.d%zu.test", i, i % 97);
    cr_assert_eq(dommatch_add(m, names[i], strlen(names[i]), names[i]), 0);
  }
  cr_expect_eq(dommatch_count(m), n);
  for (size_t i = 0; i < n; i++)
    cr_expect_eq(dommatch_lookup(m, names[i], strlen(names[i])), names[i], "%s", names[i]);
  cr_expect_null(dommatch_lookup(m, "h1.d2.test", 10));
}
