/* Domain-pattern matcher: a trie of labels from the top-level label down.
 *
 * Nodes live in one array and are named by index; the root is node 0. An
 * exact-label edge is an entry of one open-addressing hash table keyed by
 * (parent node, label), so stepping down a level costs one hash of the label
 * whatever the number of patterns. Glob labels cannot be hashed and hang off
 * their parent in a short list that is tried after the exact edge. Labels of
 * both kinds are stored in one text pool.
 *
 * A lookup walks the name's labels from the top; at every node it may
 * record a candidate (a pattern that ends there), and it only branches where
 * globs exist. Candidates are ranked by the sequence of label classes that
 * matched them, from the top-level label down:
 *   1. more matched labels win ("*." counts as one label);
 *   2. then, at the first label where two sequences differ, exact beats glob
 *      beats subdomain wildcard;
 *   3. then exact pattern beats "*.x" beats ".x" (so "x" wins over ".x" for
 *      the name x, and "*.x" over ".x" for names below x);
 *   4. a remaining tie goes to the pattern whose glob edge was added first. */
#include "filters/dommatch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"

#define NAME_MAX_LEN 253
#define LABEL_MAX_LEN 63
#define MAX_LABELS 128 /* a 253-octet name has at most 127 labels */
#define NO_GLOB UINT32_MAX

/* What a pattern asks for at the node where its labels end. */
enum slot {
  SLOT_EXACT,  /* "x": the name itself */
  SLOT_STRICT, /* "*.x": names strictly below x */
  SLOT_INCL,   /* ".x": x and names below it */
  SLOT_COUNT
};

/* How one label of the name was matched; larger is more specific. */
enum label_class { CLASS_WILD = 1, CLASS_GLOB = 2, CLASS_EXACT = 3 };

/* Tie-break between patterns with the same label classes; larger wins. */
static const uint8_t slot_rank[SLOT_COUNT] = {3, 2, 1};

struct node {
  void *data[SLOT_COUNT];
  uint32_t first_glob; /* index into globs[], or NO_GLOB */
  uint8_t set;         /* bit (1 << slot) when a pattern ends here */
};

struct glob_edge {
  uint32_t text; /* offset of the glob label in the text pool */
  uint32_t child;
  uint32_t next; /* next glob edge of the same parent, or NO_GLOB */
  uint8_t len;
};

/* A slot of the exact-edge table. child == 0 marks an empty slot: the root
 * is never anybody's child. */
struct edge {
  uint32_t hash;
  uint32_t parent;
  uint32_t child;
  uint32_t text;
  uint8_t len;
};

struct dommatch {
  struct node *nodes;
  size_t nnodes, cap_nodes;
  struct edge *edges; /* power-of-two sized, at most 3/4 full */
  size_t nedges, cap_edges;
  struct glob_edge *globs;
  size_t nglobs, cap_globs;
  char *text;
  size_t text_len, cap_text;
  size_t count;
};

/* ---- storage ---------------------------------------------------------- */

/* Returns ARR grown to hold at least NEED elements of SIZE bytes (updating
 * *CAP), or NULL with ARR and *CAP unchanged. */
static void *grow_array(void *arr, size_t *cap, size_t need, size_t size) {
  size_t n = *cap ? *cap : 16;

  if (need <= *cap)
    return arr;
  while (n < need)
    n *= 2;
  if (n > UINT32_MAX / 2 || !(arr = realloc(arr, n * size)))
    return NULL;
  *cap = n;
  return arr;
}

static uint32_t hash_label(uint32_t parent, const char *s, size_t len) {
  uint32_t h = 2166136261u ^ (parent * 0x9e3779b1u);
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h ^ (h >> 15);
}

static uint32_t find_edge(const struct dommatch *m, uint32_t parent, const char *label,
                          size_t len, uint32_t hash) {
  size_t mask = m->cap_edges - 1;

  if (m->cap_edges == 0)
    return 0;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const struct edge *e = &m->edges[i];
    if (e->child == 0)
      return 0;
    if (e->hash == hash && e->parent == parent && e->len == len &&
        memcmp(m->text + e->text, label, len) == 0)
      return e->child;
  }
}

static void place_edge(struct edge *table, size_t cap, const struct edge *e) {
  size_t i = e->hash & (cap - 1);
  while (table[i].child != 0)
    i = (i + 1) & (cap - 1);
  table[i] = *e;
}

static int grow_edges(struct dommatch *m) {
  size_t cap = m->cap_edges ? m->cap_edges * 2 : 64;
  struct edge *table = calloc(cap, sizeof(*table));

  if (!table)
    return -ENOMEM;
  for (size_t i = 0; i < m->cap_edges; i++)
    if (m->edges[i].child != 0)
      place_edge(table, cap, &m->edges[i]);
  free(m->edges);
  m->edges = table;
  m->cap_edges = cap;
  return 0;
}

/* Copies LABEL into the text pool; returns its offset or -ENOMEM. */
static int64_t store_text(struct dommatch *m, const char *label, size_t len) {
  int64_t off = (int64_t)m->text_len;
  char *text = grow_array(m->text, &m->cap_text, m->text_len + len, 1);

  if (!text)
    return -ENOMEM;
  m->text = text;
  memcpy(m->text + m->text_len, label, len);
  m->text_len += len;
  return off;
}

/* Appends an empty node; returns its index or 0 (never a valid child) on
 * allocation failure. */
static uint32_t new_node(struct dommatch *m) {
  struct node *nodes = grow_array(m->nodes, &m->cap_nodes, m->nnodes + 1, sizeof(*nodes));

  if (!nodes)
    return 0;
  m->nodes = nodes;
  memset(&m->nodes[m->nnodes], 0, sizeof(struct node));
  m->nodes[m->nnodes].first_glob = NO_GLOB;
  return (uint32_t)m->nnodes++;
}

/* Returns the exact child of PARENT labelled LABEL, created if absent, or 0
 * on allocation failure. */
static uint32_t exact_child(struct dommatch *m, uint32_t parent, const char *label,
                            size_t len) {
  uint32_t hash = hash_label(parent, label, len);
  uint32_t child = find_edge(m, parent, label, len, hash);
  struct edge e = {hash, parent, 0, 0, (uint8_t)len};
  int64_t off;

  if (child != 0)
    return child;
  if ((m->nedges + 1) * 4 > m->cap_edges * 3 && grow_edges(m) != 0)
    return 0;
  if ((off = store_text(m, label, len)) < 0 || (e.child = new_node(m)) == 0)
    return 0;
  e.text = (uint32_t)off;
  place_edge(m->edges, m->cap_edges, &e);
  m->nedges++;
  return e.child;
}

/* Same as exact_child for a glob label; globs of a parent keep insertion
 * order, which breaks otherwise perfect ties. */
static uint32_t glob_child(struct dommatch *m, uint32_t parent, const char *label,
                           size_t len) {
  const uint32_t *link = &m->nodes[parent].first_glob;
  uint32_t index, child, *tail;
  struct glob_edge *globs;
  int64_t off;

  for (; *link != NO_GLOB; link = &m->globs[*link].next) {
    const struct glob_edge *g = &m->globs[*link];
    if (g->len == len && memcmp(m->text + g->text, label, len) == 0)
      return g->child;
  }
  if (!(globs = grow_array(m->globs, &m->cap_globs, m->nglobs + 1, sizeof(*globs))))
    return 0;
  m->globs = globs;
  if ((off = store_text(m, label, len)) < 0 || (child = new_node(m)) == 0)
    return 0;
  index = (uint32_t)m->nglobs++;
  m->globs[index] = (struct glob_edge){(uint32_t)off, child, NO_GLOB, (uint8_t)len};
  /* new_node may have moved the nodes array: find the tail link again. */
  tail = &m->nodes[parent].first_glob;
  while (*tail != NO_GLOB)
    tail = &m->globs[*tail].next;
  *tail = index;
  return child;
}

struct dommatch *dommatch_new(void) {
  struct dommatch *m = calloc(1, sizeof(*m));

  if (!m)
    return NULL;
  new_node(m); /* the root, node 0 */
  if (m->nnodes != 1) {
    dommatch_free(m);
    return NULL;
  }
  return m;
}

void dommatch_free(struct dommatch *m) {
  if (!m)
    return;
  free(m->nodes);
  free(m->edges);
  free(m->globs);
  free(m->text);
  free(m);
}

size_t dommatch_count(const struct dommatch *m) { return m->count; }

/* ---- syntax ----------------------------------------------------------- */

static bool is_pattern_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '*' || c == '?' || c == '[' || c == ']';
}

static bool is_set_char(char c) { return is_pattern_char(c) && !strchr(".*?[]", c); }

static bool is_glob(const char *label, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (label[i] == '*' || label[i] == '?' || label[i] == '[')
      return true;
  return false;
}

/* Checks the '[...]' set opening at L[I]; on success *END is its ']'. */
static const char *check_set(const char *l, size_t n, size_t i, size_t *end) {
  size_t j = i + 1;

  while (j < n && l[j] != ']') {
    if (!is_set_char(l[j]))
      return "'[', '*' or '?' inside a '[...]' set";
    if (j + 2 < n && l[j + 1] == '-' && l[j + 2] != ']') {
      if (!is_set_char(l[j + 2]))
        return "'[', '*' or '?' inside a '[...]' set";
      if (l[j] > l[j + 2])
        return "reversed range in a '[...]' set";
      j += 2;
    }
    j++;
  }
  if (j >= n)
    return "unbalanced '[' in a label";
  if (j == i + 1)
    return "empty '[]' set";
  *end = j;
  return NULL;
}

static const char *check_label(const char *l, size_t n) {
  const char *why;

  if (n == 0)
    return "empty label";
  if (n > LABEL_MAX_LEN)
    return "label longer than 63 characters";
  if (n == 1 && l[0] == '*')
    return "a '*.' wildcard is only allowed as the first label";
  for (size_t i = 0; i < n; i++) {
    if (l[i] == ']')
      return "unbalanced ']' in a label";
    if (l[i] == '[' && (why = check_set(l, n, i, &i)) != NULL)
      return why;
  }
  return NULL;
}

/* Strips a leading "*." or "." from *P / *LEN and says which slot the rest
 * belongs to. */
static enum slot strip_prefix(const char **p, size_t *len) {
  if (*len >= 2 && (*p)[0] == '*' && (*p)[1] == '.') {
    *p += 2;
    *len -= 2;
    return SLOT_STRICT;
  }
  if (*len >= 1 && (*p)[0] == '.') {
    *p += 1;
    *len -= 1;
    return SLOT_INCL;
  }
  return SLOT_EXACT;
}

static const char *check_pattern(const char *p, size_t len) {
  const char *why;
  size_t start = 0;

  if (len == 0)
    return "empty pattern";
  if (len > NAME_MAX_LEN)
    return "pattern longer than 253 characters";
  if (len == 1 && (p[0] == '*' || p[0] == '.'))
    return "a bare '*' or '.' would match every name";
  for (size_t i = 0; i < len; i++) {
    if (p[i] >= 'A' && p[i] <= 'Z')
      return "uppercase letter (patterns are lowercase)";
    if (!is_pattern_char(p[i]))
      return "character outside [a-z0-9-_.*?[]]";
  }
  if (p[len - 1] == '.')
    return "trailing dot";
  strip_prefix(&p, &len);
  for (size_t i = 0; i <= len; i++) {
    if (i < len && p[i] != '.')
      continue;
    if ((why = check_label(p + start, i - start)) != NULL)
      return why;
    start = i + 1;
  }
  return NULL;
}

int dommatch_check(const char *pattern, size_t len, const char **why) {
  const char *reason = check_pattern(pattern, len);

  if (!reason)
    return 0;
  if (why)
    *why = reason;
  return EMB_EBADPATTERN;
}

int dommatch_add(struct dommatch *m, const char *pattern, size_t len, void *data) {
  enum slot slot;
  uint32_t node = 0;
  size_t end;
  int err;

  if ((err = dommatch_check(pattern, len, NULL)) != 0)
    return err;
  slot = strip_prefix(&pattern, &len);
  /* Labels from the last (top-level) one down. A failed allocation may leave
   * empty nodes behind; they hold no pattern and never match. */
  for (end = len; end > 0;) {
    size_t start = end;
    while (start > 0 && pattern[start - 1] != '.')
      start--;
    const char *label = pattern + start;
    node = is_glob(label, end - start) ? glob_child(m, node, label, end - start)
                                       : exact_child(m, node, label, end - start);
    if (node == 0)
      return -ENOMEM;
    end = start > 0 ? start - 1 : 0;
  }
  if (m->nodes[node].set & (1u << slot))
    return EMB_EDUPLICATE;
  m->nodes[node].set |= (uint8_t)(1u << slot);
  m->nodes[node].data[slot] = data;
  m->count++;
  return 0;
}

/* ---- lookup ----------------------------------------------------------- */

/* Matches one set or character of a glob at P against C; *WIDTH receives
 * the element's length in the pattern. Sets were validated when added. */
static bool match_element(const char *p, char c, size_t *width) {
  size_t i = 1;
  bool hit = false;

  if (p[0] != '[') {
    *width = 1;
    return p[0] == '?' || p[0] == c;
  }
  while (p[i] != ']') {
    if (p[i + 1] == '-' && p[i + 2] != ']') {
      hit = hit || (p[i] <= c && c <= p[i + 2]);
      i += 3;
    } else {
      hit = hit || p[i] == c;
      i++;
    }
  }
  *width = i + 1;
  return hit;
}

/* Glob match of one label: greedy '*' with backtracking to the last star,
 * linear in practice and O(len(p) * len(s)) at worst. */
static bool match_glob(const char *p, size_t plen, const char *s, size_t slen) {
  size_t pi = 0, si = 0, star_p = 0, star_s = 0, width;
  bool star = false;

  while (si < slen) {
    if (pi < plen && p[pi] == '*') {
      star = true;
      star_p = ++pi;
      star_s = si;
    } else if (pi < plen && match_element(p + pi, s[si], &width)) {
      pi += width;
      si++;
    } else if (star) {
      pi = star_p;
      si = ++star_s;
    } else {
      return false;
    }
  }
  while (pi < plen && p[pi] == '*')
    pi++;
  return pi == plen;
}

struct walk {
  const struct dommatch *m;
  const char *name;
  uint8_t off[MAX_LABELS]; /* label I starts at name + off[I]; label 0 is the top */
  uint8_t len[MAX_LABELS];
  unsigned n;
  uint8_t path[MAX_LABELS + 1]; /* class of each label matched so far */
  uint8_t best[MAX_LABELS + 2]; /* classes of the best candidate, then its slot rank */
  unsigned best_n;              /* 0: no candidate yet */
  void *best_data;
};

/* Offers the pattern in SLOT of the current node, matched by path[0..K). */
static void offer(struct walk *w, unsigned k, const struct node *nd, enum slot slot) {
  int c;

  if (!(nd->set & (1u << slot)))
    return;
  if (k < w->best_n)
    return;
  if (k == w->best_n) {
    c = memcmp(w->path, w->best, k);
    if (c < 0 || (c == 0 && slot_rank[slot] <= w->best[k]))
      return;
  }
  memcpy(w->best, w->path, k);
  w->best[k] = slot_rank[slot];
  w->best_n = k;
  w->best_data = nd->data[slot];
}

static void visit(struct walk *w, uint32_t id, unsigned depth) {
  const struct dommatch *m = w->m;
  const struct node *nd = &m->nodes[id];
  const char *label;
  uint32_t child;

  if (depth == w->n) {
    offer(w, depth, nd, SLOT_EXACT);
    offer(w, depth, nd, SLOT_INCL);
    return;
  }
  w->path[depth] = CLASS_WILD;
  offer(w, depth + 1, nd, SLOT_STRICT);
  offer(w, depth + 1, nd, SLOT_INCL);
  label = w->name + w->off[depth];
  child = find_edge(m, id, label, w->len[depth], hash_label(id, label, w->len[depth]));
  if (child != 0) {
    w->path[depth] = CLASS_EXACT;
    visit(w, child, depth + 1);
  }
  for (uint32_t g = nd->first_glob; g != NO_GLOB; g = m->globs[g].next) {
    const struct glob_edge *e = &m->globs[g];
    if (match_glob(m->text + e->text, e->len, label, w->len[depth])) {
      w->path[depth] = CLASS_GLOB;
      visit(w, e->child, depth + 1);
    }
  }
}

/* Splits NAME into labels, top-level first. Returns false if it cannot be
 * a normalised name. */
static bool split_labels(struct walk *w, const char *name, size_t len) {
  size_t end = len;

  if (len == 0 || len > NAME_MAX_LEN)
    return false;
  w->n = 0;
  for (size_t i = len + 1; i-- > 0;) {
    if (i > 0 && name[i - 1] != '.')
      continue;
    if (w->n == MAX_LABELS)
      return false;
    w->off[w->n] = (uint8_t)i;
    w->len[w->n++] = (uint8_t)(end - i);
    end = i - (i > 0);
  }
  return true;
}

void *dommatch_lookup(const struct dommatch *m, const char *name, size_t len) {
  struct walk w;

  w.m = m;
  w.name = name;
  w.best_n = 0;
  w.best[0] = 0;
  w.best_data = NULL;
  if (!split_labels(&w, name, len))
    return NULL;
  visit(&w, 0, 0);
  return w.best_data;
}
