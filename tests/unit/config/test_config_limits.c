/* Config loader limits: YAML nesting is bounded at 64 levels (the top-level
 * mapping is level 1) in the main file and in vendor lists, with the exact
 * error and position, and documents within the bound are left to the
 * ordinary checks. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "filters/err.h"
#include "tests/unit/config_fixture.h"

TestSuite(config_limits, .init = setup, .fini = teardown);

#define DEPTH_MSG "syntax error: nested deeper than 64 levels"

/* PREFIX, then N '[' and N ']', then SUFFIX (malloc'd). */
static char *brackets(const char *prefix, size_t n, const char *suffix) {
  size_t lp = strlen(prefix), ls = strlen(suffix);
  char *s = malloc(lp + 2 * n + ls + 1);
  cr_assert_not_null(s);
  memcpy(s, prefix, lp);
  memset(s + lp, '[', n);
  memset(s + lp + n, ']', n);
  memcpy(s + lp + 2 * n, suffix, ls + 1);
  return s;
}

/* `exceptions:` holding N nested block collections, one per line, each
 * indented one step further, the innermost holding the scalar x: sequences
 * ("-" alone on its line) or, with MAPPINGS, mappings with keys k0, k1, ... */
static char *block_nesting(size_t n, bool mappings) {
  size_t cap = 32 + n * (2 * n + 16), o = 0;
  char *s = malloc(cap);
  cr_assert_not_null(s);
  o += (size_t)snprintf(s + o, cap - o, "exceptions:\n");
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j <= i; j++)
      o += (size_t)snprintf(s + o, cap - o, "  ");
    if (mappings)
      o += (size_t)snprintf(s + o, cap - o, "k%zu:", i);
    else
      o += (size_t)snprintf(s + o, cap - o, "-");
    o += (size_t)snprintf(s + o, cap - o, "%s\n", i + 1 < n ? "" : " x");
  }
  return s;
}

static char *block_sequences(size_t n) {
  return block_nesting(n, false);
}

static char *block_mappings(size_t n) {
  return block_nesting(n, true);
}

/* Loads TEXT; expects a config error that is not about nesting. */
static void expect_not_depth_error(const char *text) {
  int rc = load(text);
  cr_assert_eq(rc, EMB_ECONFIG, "got %s (%s)", err_name(rc), err);
  cr_expect_null(strstr(err, "nested deeper"), "refused for depth: %s", err);
  cr_expect_neq(err[0], '\0');
}

/* ---- flow sequences ---------------------------------------------------- */

Test(config_limits, sixty_five_levels_refused_at_the_first_level_too_deep) {
  /* The mapping, then 64 sequences: the 64th '[' (column 12 + 64) is level 65. */
  char *text = brackets("# too deep\nexceptions: ", 64, "\n");
  expect_error(text, "@/main.yaml:2:76: " DEPTH_MSG);
  free(text);
}

Test(config_limits, sixty_four_levels_left_to_the_type_checks) {
  char *text = brackets("# deep enough\nexceptions: ", 63, "\n");
  expect_not_depth_error(text); /* a type error: the innermost entry is not a mapping */
  free(text);
}

Test(config_limits, forty_thousand_levels_refused_with_the_same_message) {
  /* Before the bound this took minutes to load; now it stops at level 65. */
  char *text = brackets("exceptions: ", 40000, "\n");
  expect_error(text, "@/main.yaml:1:76: " DEPTH_MSG);
  free(text);
}

Test(config_limits, unbalanced_deep_brackets_refused_for_depth) {
  /* Never closed: the depth error comes before any syntax error. */
  char *text = brackets("exceptions: ", 40000, "");
  text[12 + 40000] = '\0';
  expect_error(text, "@/main.yaml:1:76: " DEPTH_MSG);
  free(text);
}

Test(config_limits, many_siblings_within_the_bound_are_not_deep) {
  /* 200 siblings, each 63 levels below the mapping: depth is not a count. */
  size_t one = 2 * 62, cap = 16 + 200 * (one + 2), o = 0;
  char *text = malloc(cap);
  cr_assert_not_null(text);
  o += (size_t)snprintf(text + o, cap - o, "exceptions: [");
  for (int i = 0; i < 200; i++) {
    char *b = brackets(i ? "," : "", 62, "");
    o += (size_t)snprintf(text + o, cap - o, "%s", b);
    free(b);
  }
  snprintf(text + o, cap - o, "]\n");
  expect_not_depth_error(text);
  free(text);
}

/* ---- flow mappings and block collections -------------------------------- */

Test(config_limits, flow_mappings_sixty_five_levels_refused) {
  char text[1024];
  size_t o = (size_t)snprintf(text, sizeof(text), "exceptions: ");
  for (int i = 0; i < 64; i++)
    o += (size_t)snprintf(text + o, sizeof(text) - o, "{a: ");
  o += (size_t)snprintf(text + o, sizeof(text) - o, "x");
  for (int i = 0; i < 64; i++)
    o += (size_t)snprintf(text + o, sizeof(text) - o, "}");
  snprintf(text + o, sizeof(text) - o, "\n");
  expect_error(text, "@/main.yaml:1:265: " DEPTH_MSG); /* 13 + 4 * 63 */
}

Test(config_limits, block_sequences_sixty_five_levels_refused_on_their_line) {
  char *text = block_sequences(64); /* the 64th "-" is on line 65, column 1 + 2 * 64 */
  expect_error(text, "@/main.yaml:65:129: " DEPTH_MSG);
  free(text);
}

Test(config_limits, block_sequences_sixty_four_levels_not_refused_for_depth) {
  char *text = block_sequences(63);
  expect_not_depth_error(text);
  free(text);
}

Test(config_limits, block_mappings_sixty_five_levels_refused_on_their_line) {
  char *text = block_mappings(64);
  expect_error(text, "@/main.yaml:65:129: " DEPTH_MSG);
  free(text);
}

Test(config_limits, block_mappings_sixty_four_levels_not_refused_for_depth) {
  char *text = block_mappings(63);
  expect_not_depth_error(text);
  free(text);
}

/* ---- vendor lists -------------------------------------------------------- */

Test(config_limits, deep_vendor_list_refused_naming_the_vendor_file) {
  char *vendor = brackets("vendor: acme\ncategories:\n  updates: ", 63, "\n");
  put("acme.yaml", vendor);
  expect_error("vendors:\n  - file: acme.yaml\n", "@/acme.yaml:3:74: " DEPTH_MSG);
  free(vendor);
}

Test(config_limits, deep_vendor_list_of_forty_thousand_levels_refused) {
  char *vendor = brackets("vendor: acme\ncategories: ", 40000, "\n");
  put("acme.yaml", vendor);
  expect_error("vendors:\n  - file: acme.yaml\n", "@/acme.yaml:2:76: " DEPTH_MSG);
  free(vendor);
}
