/* libFuzzer target for the domain matcher, checked against a naive
 * reference. Input: a name on the first line, patterns on the following
 * lines (invalid ones are skipped, as the config loader would refuse them).
 * The matcher answers through its hashed trie; the reference tries every
 * pattern label by label with fnmatch(3). The target traps when the two
 * disagree on whether anything matches, or when the matcher returns a
 * pattern that does not match the name. */
#include <fnmatch.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "filters/dommatch.h"
#include "filters/normalise.h"

#define CHECK(cond)          \
  do {                       \
    if (!(cond))             \
      __builtin_trap();      \
  } while (0)

#define MAX_PATTERNS 32
#define MAX_LABELS 128

struct labels {
  char buf[256];
  const char *l[MAX_LABELS];
  size_t n;
};

static bool split(const char *s, size_t len, struct labels *out) {
  size_t i, start = 0;
  if (len >= sizeof(out->buf))
    return false;
  memcpy(out->buf, s, len);
  out->buf[len] = '\0';
  out->n = 0;
  for (i = 0; i <= len; i++) {
    if (i < len && out->buf[i] != '.')
      continue;
    if (out->n == MAX_LABELS)
      return false;
    out->buf[i] = '\0';
    out->l[out->n++] = out->buf + start;
    start = i + 1;
  }
  return true;
}

/* The documented meaning of a pattern, checked the slow way. */
static bool reference_match(const char *p, size_t plen, const struct labels *name) {
  struct labels pat;
  bool strict = false, incl = false;
  size_t i, off;

  if (plen >= 2 && p[0] == '*' && p[1] == '.') {
    strict = true;
    p += 2;
    plen -= 2;
  } else if (plen >= 1 && p[0] == '.') {
    incl = true;
    p++;
    plen--;
  }
  if (!split(p, plen, &pat))
    return false;
  if (strict ? name->n <= pat.n : incl ? name->n < pat.n : name->n != pat.n)
    return false;
  off = name->n - pat.n;
  for (i = 0; i < pat.n; i++)
    if (fnmatch(pat.l[i], name->l[off + i], 0) != 0)
      return false;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data, *end = in + size, *nl;
  const char *pats[MAX_PATTERNS];
  size_t lens[MAX_PATTERNS], npats = 0, i;
  struct dommatch *m;
  struct labels name;
  struct host host;
  bool any = false;
  void *hit;

  if ((nl = memchr(in, '\n', size)) == NULL)
    return 0;
  if (host_normalise(in, (size_t)(nl - in), &host) != 0 || host.kind != HOST_NAME ||
      !split(host.name, host.len, &name))
    return 0;
  if ((m = dommatch_new()) == NULL)
    return 0;
  for (in = nl + 1; in < end && npats < MAX_PATTERNS; in = nl + 1) {
    size_t len;
    nl = memchr(in, '\n', (size_t)(end - in));
    if (nl == NULL)
      nl = end;
    len = (size_t)(nl - in);
    if (dommatch_check(in, len, NULL) != 0)
      continue;
    if (dommatch_add(m, in, len, (void *)(uintptr_t)(npats + 1)) != 0)
      continue; /* a duplicate: the first one stays */
    pats[npats] = in;
    lens[npats++] = len;
  }
  for (i = 0; i < npats; i++)
    any |= reference_match(pats[i], lens[i], &name);
  hit = dommatch_lookup(m, host.name, host.len);
  CHECK((hit != NULL) == any);
  if (hit != NULL) {
    size_t k = (size_t)(uintptr_t)hit - 1;
    CHECK(k < npats && reference_match(pats[k], lens[k], &name));
  }
  dommatch_free(m);
  return 0;
}
