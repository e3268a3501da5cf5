/* Request-path pattern matcher (see pathmatch.h).
 *
 * A pattern is kept as its segments, last first, each a glob. A path is
 * read from its end, one decoded byte at a time, into its last segments
 * (struct segs), resolving ".." on the way, so that neither its length nor
 * its dot segments can push the file name out of reach of a bounded
 * buffer. Patterns are then tried in turn from the last segment up: a
 * mismatch on the file name ends the try at once. */
#include "filters/pathmatch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"

#define MIN_FILE_LITERALS 4 /* literal characters the last segment must hold */
/* The longest pattern: "**" and 16 segments of 127 characters, each after a '/'. */
#define PATTERN_MAX (2 + PATHMATCH_MAX_SEGMENTS * (PATHMATCH_MAX_SEGMENT + 1))

struct pattern {
  char *text;                              /* lowercased, owned */
  const char *seg[PATHMATCH_MAX_SEGMENTS]; /* into text, last segment first */
  uint8_t seglen[PATHMATCH_MAX_SEGMENTS];
  size_t nseg;     /* not counting a leading "**" */
  bool anchored;   /* no leading "**": the path has exactly nseg segments */
  size_t literals; /* literal characters in all segments: the tie-break */
  void *data;
};

struct pathmatch {
  struct pattern *pats;
  size_t n, cap;
};

/* The last segments of a path, decoded and lowercased, last first. */
struct segs {
  size_t n;     /* kept */
  size_t total; /* in the whole path */
  uint8_t len[PATHMATCH_MAX_SEGMENTS];
  bool overlong[PATHMATCH_MAX_SEGMENTS];
  char text[PATHMATCH_MAX_SEGMENTS][PATHMATCH_MAX_SEGMENT];
};

static char lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* ---- globs ------------------------------------------------------------------ */

/* Length of the set "[...]" at P (P[0] == '['), or 0 if it is malformed. */
static size_t set_len(const char *p, size_t n) {
  size_t i = 1;
  if (n < 3)
    return 0;
  while (i < n && p[i] != ']') {
    if (p[i] == '[' || p[i] == '*' || p[i] == '?')
      return 0;
    if (i + 2 < n && p[i + 1] == '-' && p[i + 2] != ']') {
      if (p[i] > p[i + 2])
        return 0;
      i += 3;
    } else {
      i++;
    }
  }
  return i < n && i > 1 ? i + 1 : 0;
}

/* Whether C is in the set SET[0..len) ("[a-z0-9]"). */
static bool in_set(const char *set, size_t len, char c) {
  for (size_t i = 1; i + 1 < len;) {
    if (i + 3 < len && set[i + 1] == '-') {
      if (c >= set[i] && c <= set[i + 2])
        return true;
      i += 3;
    } else {
      if (c == set[i])
        return true;
      i++;
    }
  }
  return false;
}

/* Length of the glob token at P: a set, or one character. */
static size_t token_len(const char *p, size_t n) {
  return p[0] == '[' ? set_len(p, n) : 1;
}

static bool token_matches(const char *p, size_t tlen, char c) {
  if (p[0] == '?')
    return true;
  if (p[0] == '[')
    return in_set(p, tlen, c);
  return p[0] == c;
}

/* Glob G (GN bytes, checked) against S (SN bytes). Backtracks only to the
 * last '*': at most GN x SN steps, both bounded by PATHMATCH_MAX_SEGMENT. */
static bool glob_matches(const char *g, size_t gn, const char *s, size_t sn) {
  size_t gi = 0, si = 0, star_g = SIZE_MAX, star_s = 0;
  while (si < sn) {
    if (gi < gn && g[gi] == '*') {
      star_g = ++gi;
      star_s = si;
      continue;
    }
    if (gi < gn) {
      size_t t = token_len(g + gi, gn - gi);
      if (token_matches(g + gi, t, s[si])) {
        gi += t;
        si++;
        continue;
      }
    }
    if (star_g == SIZE_MAX)
      return false;
    gi = star_g;
    si = ++star_s;
  }
  while (gi < gn && g[gi] == '*')
    gi++;
  return gi == gn;
}

/* ---- patterns --------------------------------------------------------------- */

/* Checks one segment; counts its literal characters into *LITERALS and
 * whether it is all literal into *PLAIN. NULL or the reason it is invalid. */
static const char *check_segment(const char *s, size_t n, size_t *literals, bool *plain) {
  *literals = 0;
  *plain = true;
  if (n == 0)
    return "empty segment ('//' or a trailing '/')";
  if (n > PATHMATCH_MAX_SEGMENT)
    return "segment longer than 127 characters";
  if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
    return "'.' and '..' segments are resolved before matching";
  if (n == 2 && s[0] == '*' && s[1] == '*')
    return "'**' is allowed only as the first segment";
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || strchr("#%\\", c) != NULL)
      return "characters outside printable ASCII, '#', '%' and '\\' are not allowed "
             "(patterns match decoded paths)";
    if (c == '[') {
      size_t t = set_len(s + i, n - i);
      if (t == 0)
        return "malformed set (expected like [a-z0-9])";
      *plain = false;
      i += t;
      continue;
    }
    if (c == '*' || c == '?')
      *plain = false;
    else
      (*literals)++;
    i++;
  }
  return NULL;
}

/* Splits and checks PATTERN into P (segments pointing into PATTERN). */
static const char *parse(const char *pattern, size_t len, struct pattern *p) {
  const char *s = pattern, *end = pattern + len;
  bool some_plain = false;
  size_t lits = 0;
  memset(p, 0, sizeof(*p));
  p->anchored = true;
  if (len >= 3 && memcmp(s, "**/", 3) == 0) {
    p->anchored = false;
    s += 2;
  }
  if (s >= end || *s != '/')
    return "a pattern starts with '/' (the whole path) or '**/' (under any prefix)";
  const char *segv[PATHMATCH_MAX_SEGMENTS];
  size_t segn[PATHMATCH_MAX_SEGMENTS], n = 0;
  while (s < end) {
    const char *seg = ++s, *slash = memchr(seg, '/', (size_t)(end - seg));
    size_t sl = (size_t)((slash ? slash : end) - seg);
    bool plain;
    if (n == PATHMATCH_MAX_SEGMENTS)
      return "more than 16 segments";
    const char *why = check_segment(seg, sl, &lits, &plain);
    if (why != NULL)
      return why;
    segv[n] = seg;
    segn[n++] = sl;
    p->literals += lits;
    s = seg + sl;
  }
  for (size_t i = 0; i + 1 < n; i++) {
    size_t l;
    bool plain;
    check_segment(segv[i], segn[i], &l, &plain);
    some_plain = some_plain || plain;
  }
  if (n < 2 || !some_plain || lits < MIN_FILE_LITERALS)
    return "too broad: give the tree's layout and the file's name (at least two segments, "
           "a literal one before the last, and 4 literal characters in the last), like "
           "**/index/u0607g.xml";
  p->nseg = n;
  for (size_t i = 0; i < n; i++) { /* last first */
    p->seg[i] = segv[n - 1 - i];
    p->seglen[i] = (uint8_t)segn[n - 1 - i];
  }
  return NULL;
}

/* Copies PATTERN lowercased into OUT (PATTERN_MAX + 1 bytes): patterns are
 * checked in the form they are matched in. NULL or why it cannot be. */
static const char *fold(const char *pattern, size_t len, char *out) {
  if (len > PATTERN_MAX)
    return "longer than a pattern of 16 segments of 127 characters";
  for (size_t i = 0; i < len; i++)
    out[i] = lower(pattern[i]);
  out[len] = '\0';
  return NULL;
}

int pathmatch_check(const char *pattern, size_t len, const char **why) {
  struct pattern p;
  char folded[PATTERN_MAX + 1];
  const char *reason = fold(pattern, len, folded);
  if (reason == NULL)
    reason = parse(folded, len, &p);
  if (why != NULL)
    *why = reason;
  return reason == NULL ? 0 : EMB_EBADPATTERN;
}

struct pathmatch *pathmatch_new(void) {
  return calloc(1, sizeof(struct pathmatch));
}

void pathmatch_free(struct pathmatch *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->n; i++)
    free(m->pats[i].text);
  free(m->pats);
  free(m);
}

size_t pathmatch_count(const struct pathmatch *m) {
  return m->n;
}

int pathmatch_add(struct pathmatch *m, const char *pattern, size_t len, void *data) {
  struct pattern p;
  if (pathmatch_check(pattern, len, NULL) != 0)
    return EMB_EBADPATTERN;
  char *text = malloc(len + 1);
  if (text == NULL)
    return -ENOMEM;
  fold(pattern, len, text);
  int rc = parse(text, len, &p) == NULL ? 0 : EMB_EBADPATTERN;
  for (size_t i = 0; rc == 0 && i < m->n; i++)
    if (strcmp(m->pats[i].text, text) == 0)
      rc = EMB_EDUPLICATE;
  if (rc == 0 && m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct pattern *pats = realloc(m->pats, cap * sizeof(*pats));
    rc = pats != NULL ? 0 : -ENOMEM;
    if (pats != NULL) {
      m->pats = pats;
      m->cap = cap;
    }
  }
  if (rc < 0) {
    free(text);
    return rc;
  }
  p.text = text;
  p.data = data;
  m->pats[m->n++] = p;
  return 0;
}

/* ---- paths ------------------------------------------------------------------ */

/* The decoded byte that ends at *I (exclusive) in RAW, moving *I back past
 * it: an escape "%XX" counts as the one byte it stands for. Escapes read
 * backwards are the ones read forwards: a '%' is never a hex digit. */
static char prev_byte(const char *raw, size_t *i) {
  size_t k = *i;
  int hi, lo;
  if (k >= 3 && raw[k - 3] == '%' && (hi = hexval(raw[k - 2])) >= 0 &&
      (lo = hexval(raw[k - 1])) >= 0) {
    *i = k - 3;
    return (char)(hi * 16 + lo);
  }
  *i = k - 1;
  return raw[k - 1];
}

/* Reads the segment that ends at *I into BUF (reversed, at most SIZE bytes
 * kept, lowercased); returns its length (which may exceed SIZE) and leaves
 * *I at its separator. */
static size_t read_segment(const char *raw, size_t *i, char *buf, size_t size) {
  size_t n = 0;
  while (*i > 0) {
    size_t at = *i;
    char c = prev_byte(raw, i);
    if (c == '/' || c == '\\') {
      *i = at; /* leave the separator for the caller */
      break;
    }
    if (n < size)
      buf[n] = lower(c);
    n++;
  }
  return n;
}

static bool is_dots(const char *rev, size_t n, size_t dots) {
  return n == dots && (n < 1 || rev[0] == '.') && (n < 2 || rev[1] == '.');
}

/* Splits RAW (a request target) into its last segments, resolving dot
 * segments from the right. */
static void split_path(const char *raw, size_t len, struct segs *out) {
  char rev[PATHMATCH_MAX_SEGMENT];
  size_t i = 0, skip = 0;
  while (i < len && raw[i] != '?' && raw[i] != '#')
    i++;
  out->n = out->total = 0;
  while (i > 0) {
    size_t n = read_segment(raw, &i, rev, sizeof(rev));
    if (i > 0)
      prev_byte(raw, &i); /* the separator */
    if (n == 0 || is_dots(rev, n, 1))
      continue;
    if (is_dots(rev, n, 2)) {
      skip++;
      continue;
    }
    if (skip > 0) {
      skip--;
      continue;
    }
    if (out->n < PATHMATCH_MAX_SEGMENTS) {
      size_t k = out->n++;
      out->overlong[k] = n > sizeof(rev);
      out->len[k] = (uint8_t)(out->overlong[k] ? 0 : n);
      for (size_t j = 0; j < out->len[k]; j++)
        out->text[k][j] = rev[n - 1 - j];
    }
    out->total++;
  }
}

static bool pattern_matches(const struct pattern *p, const struct segs *s) {
  if (p->anchored ? s->total != p->nseg : s->total < p->nseg)
    return false;
  for (size_t i = 0; i < p->nseg; i++) {
    if (s->overlong[i]) {
      if (p->seglen[i] != 1 || p->seg[i][0] != '*')
        return false;
    } else if (!glob_matches(p->seg[i], p->seglen[i], s->text[i], s->len[i])) {
      return false;
    }
  }
  return true;
}

void *pathmatch_lookup(const struct pathmatch *m, const char *path, size_t len) {
  struct segs s;
  const struct pattern *best = NULL;
  if (m->n == 0)
    return NULL;
  split_path(path, len, &s);
  for (size_t i = 0; i < m->n; i++) {
    const struct pattern *p = &m->pats[i];
    if (best != NULL &&
        (p->nseg < best->nseg || (p->nseg == best->nseg && p->literals <= best->literals)))
      continue; /* could not win */
    if (pattern_matches(p, &s))
      best = p;
  }
  return best != NULL ? best->data : NULL;
}
