/* libFuzzer target for the request-path matcher, which reads the path of
 * every plain-HTTP request a client sends (peer bytes). The first input byte
 * picks the entry point: a path judged against the shipped Kaspersky
 * patterns' shapes, or a pattern checked and added. Traps when a contract of
 * pathmatch.h is broken: a lookup returns an added pattern's data or NULL;
 * the query and fragment, and ASCII case, never change a verdict; a pattern
 * pathmatch_check accepts is added, and one it refuses is refused. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/pathmatch.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

#define MAX_PATH 16384

static const char *const patterns[] = {
    "**/index/u0607g.xml",
    "**/bases/*/*-0607g.xml",
    "**/bases/av/kdb/*/kdb-*-0607g.xml*",
    "**/bases/av/kdb/*/*.kdc",
    "**/updates/kdb/*/*.mft",
    "**/diffs/bases/ids/*/*.kdz.srf",
    "/updates/index/u1313g.xml",
    "**/index/u[0-9][0-9][0-9][0-9]g.xml",
};
static int tags[sizeof(patterns) / sizeof(patterns[0])];
static struct pathmatch *shipped;

static void setup(void) {
  if (shipped != NULL)
    return;
  shipped = pathmatch_new();
  CHECK(shipped != NULL);
  for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
    CHECK(pathmatch_add(shipped, patterns[i], strlen(patterns[i]), &tags[i]) == 0);
}

static bool is_tag(const void *p) {
  return p == NULL ||
         ((const int *)p >= tags && (const int *)p < tags + sizeof(tags) / sizeof(tags[0]));
}

static void judge_path(const char *in, size_t len) {
  static char other[MAX_PATH + 8];
  const void *got = pathmatch_lookup(shipped, in, len);
  CHECK(is_tag(got));
  if (len > MAX_PATH)
    return;
  /* ASCII case never matters. */
  for (size_t i = 0; i < len; i++)
    other[i] = in[i] >= 'a' && in[i] <= 'z' ? (char)(in[i] - 32) : in[i];
  CHECK(pathmatch_lookup(shipped, other, len) == got);
  /* Neither does a query or fragment after the path. */
  memcpy(other, in, len);
  memcpy(other + len, "?a/b#c", 6);
  if (memchr(in, '?', len) == NULL && memchr(in, '#', len) == NULL)
    CHECK(pathmatch_lookup(shipped, other, len + 6) == got);
}

static void add_pattern(const char *in, size_t len) {
  static int tag;
  struct pathmatch *m = pathmatch_new();
  const char *why = NULL;
  CHECK(m != NULL);
  int checked = pathmatch_check(in, len, &why);
  int added = pathmatch_add(m, in, len, &tag);
  CHECK(checked == 0 ? (added == 0 && why == NULL) : (added == EMB_EBADPATTERN && why != NULL));
  if (added == 0) {
    CHECK(pathmatch_count(m) == 1);
    CHECK(pathmatch_add(m, in, len, &tag) == EMB_EDUPLICATE);
    CHECK(pathmatch_lookup(m, in, len) == NULL || pathmatch_lookup(m, in, len) == &tag);
  }
  pathmatch_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  setup();
  if (data[0] & 1)
    add_pattern((const char *)data + 1, size - 1);
  else
    judge_path((const char *)data + 1, size - 1);
  return 0;
}
