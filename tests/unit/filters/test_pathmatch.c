/* The request-path matcher: pattern syntax and the specificity it demands,
 * paths read as a server reads them (query cut, escapes decoded, dot
 * segments resolved, case folded), and ordinary paths left alone. */
#include <criterion/criterion.h>
#include <string.h>

#include "filters/err.h"
#include "filters/pathmatch.h"

static struct pathmatch *m;
static int tags[8];

static void setup(void) {
  m = pathmatch_new();
  cr_assert_not_null(m);
}

static void teardown(void) {
  pathmatch_free(m);
}

TestSuite(pathmatch, .init = setup, .fini = teardown);

static void add(const char *pattern, int *tag) {
  cr_assert_eq(pathmatch_add(m, pattern, strlen(pattern), tag), 0, "%s", pattern);
}

static const int *lookup(const char *path) {
  return pathmatch_lookup(m, path, strlen(path));
}

/* The shipped Kaspersky patterns' shapes. */
static void add_kaspersky(void) {
  add("**/index/u0607g.xml", &tags[0]);
  add("**/bases/av/kdb/*/*.kdc", &tags[1]);
  add("**/bases/*/*-0607g.xml", &tags[2]);
  add("**/diffs/bases/ids/*/*.kdz.srf", &tags[3]);
  add("/updates/index/u1313g.xml", &tags[4]);
}

Test(pathmatch, update_files_match_under_any_prefix) {
  add_kaspersky();
  cr_expect_eq(lookup("/index/u0607g.xml"), &tags[0]);
  cr_expect_eq(lookup("/kav/Updates/index/u0607g.xml"), &tags[0]);
  cr_expect_eq(lookup("/mirror/bases/av/kdb/i386/dailyc.kdc"), &tags[1]);
  cr_expect_eq(lookup("/bases/apu/apu-0607g.xml"), &tags[2]);
  cr_expect_eq(lookup("/diffs/bases/ids/i386/idsbase.kdz.srf"), &tags[3]);
}

Test(pathmatch, anchored_patterns_match_the_whole_path) {
  add_kaspersky();
  cr_expect_eq(lookup("/updates/index/u1313g.xml"), &tags[4]);
  cr_expect_null(lookup("/x/updates/index/u1313g.xml"));
}

Test(pathmatch, paths_are_read_as_a_server_reads_them) {
  add_kaspersky();
  cr_expect_eq(lookup("/INDEX/U0607G.XML"), &tags[0], "case");
  cr_expect_eq(lookup("/index/u0607g.xml?t=1700000000#frag"), &tags[0], "query, fragment");
  cr_expect_eq(lookup("/%69ndex/u0607g%2Exml"), &tags[0], "escapes");
  cr_expect_eq(lookup("/index%2Fu0607g.xml"), &tags[0], "escaped slash");
  cr_expect_eq(lookup("\\index\\u0607g.xml"), &tags[0], "backslashes");
  cr_expect_eq(lookup("//index///./u0607g.xml"), &tags[0], "empty and dot segments");
  cr_expect_eq(lookup("/index/x/../u0607g.xml"), &tags[0], "dot-dot");
  cr_expect_eq(lookup("/index/x/%2e%2e/u0607g.xml"), &tags[0], "escaped dot-dot");
  cr_expect_null(lookup("/index/u0607g.xml/.."), "dot-dot removes the file");
}

Test(pathmatch, trailing_slash_still_names_the_file_segment) {
  add_kaspersky();
  /* Servers map "/a/b/" and "/a/b" to different resources, but both name b;
   * dropping the empty segment errs towards matching. */
  cr_expect_eq(lookup("/index/u0607g.xml/"), &tags[0]);
}

Test(pathmatch, long_padding_cannot_push_the_file_out_of_reach) {
  char path[20000];
  add_kaspersky();
  strcpy(path, "/");
  memset(path + 1, 'a', 9000);
  strcpy(path + 9001, "/../");
  for (int i = 0; i < 40; i++)
    strcat(path, "x/");
  strcat(path, "index/u0607g.xml");
  cr_expect_eq(lookup(path), &tags[0]);
}

Test(pathmatch, an_overlong_segment_matches_only_a_star) {
  char path[600];
  add_kaspersky();
  strcpy(path, "/bases/av/kdb/");
  memset(path + 14, 'z', 300);
  strcpy(path + 314, "/dailyc.kdc");
  cr_expect_eq(lookup(path), &tags[1]);
  strcpy(path, "/index/");
  memset(path + 7, 'z', 300);
  strcpy(path + 307, ".xml");
  cr_expect_null(lookup(path));
}

Test(pathmatch, ordinary_paths_are_not_caught) {
  static const char *const ordinary[] = {
      "/",
      "",
      "*",
      "/index.html",
      "/index/",
      "/index/index.html",
      "/index/u.xml",
      "/bases/",
      "/bases/readme.txt",
      "/bases/av/",
      "/bases/av/kdb/",
      "/bases/av/kdb/i386/",
      "/bases/av/kdb/i386/readme.txt",
      "/updates/",
      "/updates/app.xml",
      "/diffs/",
      "/u0607g.xml",
      "/docs/index/u0607g.html",
      "/index/u0607g.xml.bak/x",
      "/static/js/app.0607g.js",
      "/bases/apu/apu-0607g.json",
      "/api/v1/index?file=u0607g.xml",
      "/search?q=/index/u0607g.xml",
      "/kdc",
      "/bases/av/kdb/i386.kdc",
  };
  add_kaspersky();
  for (size_t i = 0; i < sizeof(ordinary) / sizeof(ordinary[0]); i++)
    cr_expect_null(lookup(ordinary[i]), "%s", ordinary[i]);
}

Test(pathmatch, the_most_specific_pattern_wins) {
  add("**/bases/*/*.xml", &tags[0]);
  add("**/bases/apu/apu-0607g.xml", &tags[1]);
  add("**/x/bases/apu/*.xml", &tags[2]);
  cr_expect_eq(lookup("/x/bases/apu/apu-0607g.xml"), &tags[2], "more segments");
  cr_expect_eq(lookup("/y/bases/apu/apu-0607g.xml"), &tags[1], "more literals");
  cr_expect_eq(lookup("/y/bases/apu/other.xml"), &tags[0]);
}

Test(pathmatch, globs_within_a_segment) {
  add("**/index/u[0-9][0-9][0-9][0-9]g.xml", &tags[0]);
  add("**/bases/av/??b/a*b*c.mft", &tags[1]);
  cr_expect_eq(lookup("/index/u1901g.xml"), &tags[0]);
  cr_expect_null(lookup("/index/uabcdg.xml"));
  cr_expect_eq(lookup("/bases/av/kdb/axxbyyc.mft"), &tags[1]);
  cr_expect_eq(lookup("/bases/av/kdb/abc.mft"), &tags[1]);
  cr_expect_null(lookup("/bases/av/kdb/acb.mft"));
  cr_expect_null(lookup("/bases/av/kdbx/abc.mft"));
}

static void expect_bad(const char *pattern, const char *why_part) {
  const char *why = NULL;
  cr_expect_eq(pathmatch_check(pattern, strlen(pattern), &why), EMB_EBADPATTERN, "%s", pattern);
  cr_assert_not_null(why, "%s", pattern);
  cr_expect_not_null(strstr(why, why_part), "%s: %s", pattern, why);
  cr_expect_eq(pathmatch_add(m, pattern, strlen(pattern), &tags[0]), EMB_EBADPATTERN);
}

Test(pathmatch, broad_patterns_are_refused) {
  expect_bad("/bases/", "empty segment");
  expect_bad("**/bases/*", "too broad");
  expect_bad("**/bases/av", "too broad");
  expect_bad("**/u0607g.xml", "too broad");
  expect_bad("**/*/*.kdc", "too broad");
  expect_bad("**/index/*.x", "too broad");
}

Test(pathmatch, malformed_patterns_are_refused) {
  expect_bad("index/u0607g.xml", "starts with '/'");
  expect_bad("**index/u0607g.xml", "starts with '/'");
  expect_bad("/a/**/index/u0607g.xml", "only as the first segment");
  expect_bad("**/index//u0607g.xml", "empty segment");
  expect_bad("**/index/../u0607g.xml", "resolved before matching");
  expect_bad("**/index/u0607g.xml#x", "printable ASCII");
  expect_bad("**/index/u%30607g.xml", "printable ASCII");
  expect_bad("**/index/u0607g[.xml", "malformed set");
  expect_bad("**/index/u0607g.xml ", "printable ASCII");
}

Test(pathmatch, duplicates_ignore_case) {
  add("**/index/u0607g.xml", &tags[0]);
  cr_expect_eq(pathmatch_add(m, "**/INDEX/u0607g.xml", 19, &tags[1]), EMB_EDUPLICATE);
  cr_expect_eq(pathmatch_count(m), 1);
}

Test(pathmatch, an_empty_matcher_matches_nothing) {
  cr_expect_null(lookup("/index/u0607g.xml"));
}

/* Patterns are judged in the lowercase form they are added in: a set range
 * valid only before lowercasing ('T'-'g' becomes 't'-'g') is refused by the
 * check as by the add (found by fuzz_pathmatch). */
Test(pathmatch, check_and_add_agree_on_case_folded_sets) {
  const char *p = "**/index/u[T-g]0607g.xml";
  const char *why = NULL;
  cr_expect_eq(pathmatch_check(p, strlen(p), &why), EMB_EBADPATTERN);
  cr_expect_eq(pathmatch_add(m, p, strlen(p), &tags[0]), EMB_EBADPATTERN);
  p = "**/index/u[A-F]0607g.xml"; /* 'a'-'f' after folding: fine both ways */
  cr_expect_eq(pathmatch_check(p, strlen(p), &why), 0);
  cr_expect_eq(pathmatch_add(m, p, strlen(p), &tags[0]), 0);
  cr_expect_eq(lookup("/index/ub0607g.xml"), &tags[0]);
}
