/* `embargo export`: the policy in force, as the configuration builds it,
 * for the DNS, firewall and gateway layers. Every host rule and network
 * becomes items with Embargo's meaning (small label globs expanded; names
 * judged again so the rule that decides a name is the one that exports it);
 * what a format cannot say with that meaning is left out and named. */
#include "proxy/cmd/export.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "filters/netmatch.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/cmd/export-int.h"

#define EXIT_USAGE 2
#define EXPAND_MAX 256 /* names one glob pattern may expand to */
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyz0123456789-_"

/* Items found, and what could not be written. */
struct walk {
  const struct policy *p;
  const struct export_opts *o;
  struct item *items;
  size_t n, cap;
  FILE *refused; /* memory stream: one comment line per item left out */
  size_t nrefused;
  size_t ja4;        /* JA4 rules: never exported */
  size_t other_kind; /* names for a format of networks, or the reverse */
  size_t scoped;     /* rules of lists in force for some client groups only */
};

/* ---- actions -------------------------------------------------------------- */

/* What R's category says at NOW, capped for a hint and by monitor mode. */
static enum action rule_action(const struct policy *p, const struct rule *r, int64_t now) {
  const struct category *c = r->category;
  enum action a = now < c->cutoff ? c->before : c->after;
  if (a == ACTION_DENY && (r->confidence == CONFIDENCE_HINT || policy_monitor(p)))
    a = ACTION_LOG;
  return a;
}

/* "x" from "*.x" or ".x", with its kind. */
static const char *strip(const char *pattern, enum item_kind *kind) {
  if (pattern[0] == '*' && pattern[1] == '.') {
    *kind = ITEM_STRICT;
    return pattern + 2;
  }
  if (pattern[0] == '.') {
    *kind = ITEM_INCL;
    return pattern + 1;
  }
  *kind = ITEM_EXACT;
  return pattern;
}

static bool has_glob(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] == '*' || s[i] == '?' || s[i] == '[')
      return true;
  return false;
}

/* ---- where names meet ------------------------------------------------------ */

/* Whether label A and label B may name the same label (a glob may). */
static bool labels_meet(const char *a, size_t alen, const char *b, size_t blen) {
  if (has_glob(a, alen) || has_glob(b, blen))
    return true; /* conservatively: a carve-out too many is refused, never a name lost */
  return alen == blen && memcmp(a, b, alen) == 0;
}

/* The labels of NAME, top-level first, into LAB/LEN (at most 128). */
static size_t split(const char *name, const char *lab[], size_t len[]) {
  size_t n = 0, end = strlen(name);
  while (end > 0 && n < 128) {
    size_t start = end;
    while (start > 0 && name[start - 1] != '.')
      start--;
    lab[n] = name + start;
    len[n++] = end - start;
    end = start > 0 ? start - 1 : 0;
  }
  return n;
}

/* How many labels NAME has beyond BASE when NAME's last labels meet all of
 * BASE's; -1 when they do not. */
static int below(const char *name, const char *base) {
  const char *nl[128], *bl[128];
  size_t nlen[128], blen[128];
  size_t n = split(name, nl, nlen), b = split(base, bl, blen);
  if (n < b)
    return -1;
  for (size_t i = 0; i < b; i++)
    if (!labels_meet(nl[i], nlen[i], bl[i], blen[i]))
      return -1;
  return (int)(n - b);
}

/* Whether the names of (QKIND, Q) and those of item (KIND, BASE) meet. */
static bool overlaps(enum item_kind kind, const char *base, enum item_kind qkind, const char *q) {
  int extra = below(q, base);
  if (extra < 0 || kind == ITEM_EXACT)
    return false;
  if (kind == ITEM_GLOB) /* a glob item is at one depth, like a name */
    return extra == 0 && qkind != ITEM_STRICT;
  if (extra > 0)
    return true; /* below the item's base: the item covers names there */
  return kind == ITEM_INCL || qkind != ITEM_EXACT;
}

static void add_hole(struct item *it, enum item_kind kind, const char *text, enum action a) {
  if (it->nholes == EXPORT_HOLES_MAX) {
    it->holes_overflow = true;
    return;
  }
  struct hole *h = &it->holes[it->nholes++];
  h->kind = kind;
  h->action = a;
  snprintf(h->text, sizeof(h->text), "%s", text);
}

/* The host rules and exceptions under IT (a suffix) that Embargo judges
 * otherwise: a more specific pattern wins there. */
static void find_holes(const struct walk *w, struct item *it) {
  for (size_t i = 0; i < policy_rule_count(w->p); i++) {
    const struct rule *q = policy_rule_at(w->p, i);
    enum item_kind qk;
    const char *qb;
    if (q == it->rule || q->kind != RULE_HOST || q->vendor->groups != 0)
      continue;
    qb = strip(q->pattern, &qk);
    if (has_glob(qb, strlen(qb)) && strchr(qb, '*') != NULL)
      qk = ITEM_GLOB;
    enum action qa = rule_action(w->p, q, w->o->now);
    if (qa != it->action && overlaps(it->kind, it->text, qk == ITEM_GLOB ? ITEM_EXACT : qk, qb))
      add_hole(it, qk, qk == ITEM_GLOB ? q->pattern : qb, qa);
  }
  for (size_t i = 0; i < policy_exception_count(w->p); i++) {
    const struct exception_rule *e = policy_exception_at(w->p, i);
    enum item_kind ek;
    const char *eb = strip(e->pattern, &ek);
    if (e->groups != 0)
      continue; /* a group's exception opens nothing for the other clients */
    if (e->expires > w->o->now && it->action != ACTION_LOG && overlaps(it->kind, it->text, ek, eb))
      add_hole(it, has_glob(eb, strlen(eb)) ? ITEM_GLOB : ek, eb, ACTION_LOG);
  }
}

/* ---- items -------------------------------------------------------------- */

static bool wanted(const struct walk *w, enum action a) {
  return (unsigned)a < 3 && w->o->want[a];
}

static int push(struct walk *w, const struct item *it) {
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 64;
    struct item *grown = realloc(w->items, cap * sizeof(*grown));
    if (grown == NULL)
      return -ENOMEM;
    w->items = grown;
    w->cap = cap;
  }
  w->items[w->n++] = *it;
  return 0;
}

/* A name of R (exact, or one expansion of a glob): judged again, it is R's
 * item only if R is the rule that decides it. */
static int add_exact(struct walk *w, const struct rule *r, const char *name) {
  struct item it = {.kind = ITEM_EXACT, .rule = r};
  struct host h;
  struct verdict v;
  if (host_normalise(name, strlen(name), &h) != 0 || h.kind != HOST_NAME)
    return 0; /* a name no client could ask for (an expansion like "-a") */
  struct facts f = {.host = &h};
  policy_decide(w->p, &f, w->o->now, &v);
  if (v.rule != r || !wanted(w, v.action))
    return 0;
  it.action = v.action;
  snprintf(it.text, sizeof(it.text), "%s", name);
  return push(w, &it);
}

static int add_suffix(struct walk *w, const struct rule *r, enum item_kind kind, const char *base) {
  struct item it = {.kind = kind, .rule = r, .action = rule_action(w->p, r, w->o->now)};
  if (!wanted(w, it.action))
    return 0;
  snprintf(it.text, sizeof(it.text), "%s", base);
  find_holes(w, &it);
  return push(w, &it);
}

/* The characters one element of a glob at P stands for, into SET; returns
 * the element's length in the pattern. */
static size_t element(const char *p, char *set, size_t size) {
  size_t n = 0, i = 1;
  if (*p == '?') {
    snprintf(set, size, "%s", NAME_CHARS);
    return 1;
  }
  if (*p != '[') {
    snprintf(set, size, "%c", *p);
    return 1;
  }
  for (; p[i] != ']' && n + 1 < size; i++) {
    if (p[i + 1] == '-' && p[i + 2] != ']') {
      for (char c = p[i]; c <= p[i + 2] && n + 1 < size; c++)
        set[n++] = c;
      i += 2;
    } else {
      set[n++] = p[i];
    }
  }
  set[n] = '\0';
  return i + 1;
}

/* Calls back with every name GLOB (no '*') stands for; counts them in *N. */
struct expansion {
  struct walk *w;
  const struct rule *r;
  enum item_kind kind;
  char name[256];
  size_t n;
  int rc;
};

static void expand(struct expansion *x, const char *p, size_t at) {
  char set[64];
  if (x->rc != 0 || at >= sizeof(x->name) - 1)
    return;
  if (*p == '\0') {
    x->name[at] = '\0';
    x->rc = x->kind == ITEM_EXACT ? add_exact(x->w, x->r, x->name)
                                  : add_suffix(x->w, x->r, x->kind, x->name);
    x->n++;
    return;
  }
  size_t len = element(p, set, sizeof(set));
  for (const char *c = set; *c && x->rc == 0; c++) {
    x->name[at] = *c;
    expand(x, p + len, at + 1);
  }
}

/* How many names GLOB stands for (EXPAND_MAX + 1 when more). */
static size_t expansions(const char *p) {
  char set[64];
  size_t n = 1;
  while (*p) {
    p += element(p, set, sizeof(set));
    n *= strlen(set);
    if (n > EXPAND_MAX)
      return EXPAND_MAX + 1;
  }
  return n;
}

/* Writes the free text S (a list's name, reference or file name) inside a
 * comment line, every control byte as '?': a line break there would end
 * the comment and start a line the resolver, firewall or gateway loading
 * the export obeys (a record, a directive), which a list's text must never
 * be able to write. */
static void comment_text(FILE *out, const char *s) {
  for (; *s != '\0'; s++)
    fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

static void refuse(struct walk *w, const struct rule *r, const char *what, const char *why) {
  fprintf(w->refused, "  %s (%s/%s, ", what, r->vendor->id, r->category->name);
  comment_text(w->refused, r->where.file);
  fprintf(w->refused, ":%u:%u): %s\n", r->where.line, r->where.col, why);
  w->nrefused++;
}

static int add_host_rule(struct walk *w, const struct rule *r) {
  enum item_kind kind;
  const char *base = strip(r->pattern, &kind);
  struct item it = {.kind = ITEM_GLOB, .rule = r, .action = rule_action(w->p, r, w->o->now)};
  if (!has_glob(base, strlen(base)))
    return kind == ITEM_EXACT ? add_exact(w, r, base) : add_suffix(w, r, kind, base);
  if (strchr(base, '*') == NULL && expansions(base) <= EXPAND_MAX) {
    struct expansion x = {.w = w, .r = r, .kind = kind};
    expand(&x, base, 0);
    return x.rc;
  }
  if (!wanted(w, it.action))
    return 0;
  snprintf(it.text, sizeof(it.text), "%s", r->pattern);
  find_holes(w, &it);
  return push(w, &it);
}

/* Networks: the longest prefix decides, so a more specific one inside
 * judged otherwise is a hole. */
static int add_network_rule(struct walk *w, const struct rule *r) {
  struct item it = {.kind = ITEM_NET, .rule = r, .action = rule_action(w->p, r, w->o->now)};
  struct cidr outer, inner;
  if (!wanted(w, it.action) || cidr_parse(r->pattern, strlen(r->pattern), &outer) != 0)
    return 0;
  snprintf(it.text, sizeof(it.text), "%s", r->pattern);
  for (size_t i = 0; i < policy_rule_count(w->p); i++) {
    const struct rule *q = policy_rule_at(w->p, i);
    if (q == r || q->kind != RULE_NETWORK || q->vendor->groups != 0 ||
        cidr_parse(q->pattern, strlen(q->pattern), &inner) != 0 || inner.family != outer.family ||
        inner.bits <= outer.bits)
      continue;
    struct netmatch *m = netmatch_new();
    bool inside = m != NULL && netmatch_add(m, &outer, (void *)r) == 0 &&
                  netmatch_lookup(m, inner.family, inner.addr, NULL) != NULL;
    netmatch_free(m);
    enum action qa = rule_action(w->p, q, w->o->now);
    if (inside && qa != it.action)
      add_hole(&it, ITEM_NET, q->pattern, qa);
  }
  return push(w, &it);
}

static bool selected(const struct export_opts *o, const struct rule *r) {
  return (o->vendor == NULL || strcmp(o->vendor, r->vendor->id) == 0) &&
         (o->category == NULL || strcmp(o->category, r->category->name) == 0);
}

static int collect(struct walk *w) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < policy_rule_count(w->p); i++) {
    const struct rule *r = policy_rule_at(w->p, i);
    if (!selected(w->o, r))
      continue;
    if (r->vendor->groups != 0)
      w->scoped++; /* another layer cannot tell a group's clients from the rest */
    else if (r->kind == RULE_JA4)
      w->ja4++;
    else if (!(r->kind == RULE_HOST ? w->o->format->names : w->o->format->networks))
      w->other_kind++;
    else if (r->kind == RULE_HOST)
      rc = add_host_rule(w, r);
    else
      rc = add_network_rule(w, r);
  }
  return rc;
}

/* Whether item A is redundant beside B: B covers all of A's names with the
 * same action and nothing of A lies in one of B's holes. */
static bool covered(const struct item *a, const struct item *b) {
  if (a == b || a->action != b->action || b->kind != ITEM_INCL || a->kind == ITEM_GLOB ||
      a->kind == ITEM_NET || below(a->text, b->text) < (a->kind == ITEM_EXACT ? 0 : 1))
    return false;
  for (size_t i = 0; i < b->nholes; i++)
    if (below(a->text, b->holes[i].text) >= 0 || below(b->holes[i].text, a->text) >= 0)
      return false;
  return a->nholes == 0;
}

/* ---- output ----------------------------------------------------------------- */

static void header(const struct walk *w, FILE *out) {
  const char *c = w->o->format->comment;
  char when[32], reviewed[32], created[32];
  rfc3339_format(w->o->now, when, sizeof(when));
  fprintf(out, "%s Embargo policy %s, exported as %s at policy time %s; actions: %s%s%s\n", c,
          policy_version(w->p), w->o->format->name, when, w->o->want[ACTION_DENY] ? "deny" : "",
          w->o->want[ACTION_DENY] && w->o->want[ACTION_LOG] ? ", " : "",
          w->o->want[ACTION_LOG] ? "log" : "");
  for (size_t i = 0; i < policy_vendor_count(w->p); i++) {
    const struct vendor *v = policy_vendor_at(w->p, i);
    if (w->o->vendor != NULL && strcmp(w->o->vendor, v->id) != 0)
      continue;
    if (v->reviewed != 0)
      rfc3339_format(v->reviewed, reviewed, sizeof(reviewed));
    fprintf(out, "%s %s (", c, v->id);
    comment_text(out, v->name);
    fputs("): ", out);
    comment_text(out, v->reference ? v->reference : "no reference given");
    fprintf(out, "; reviewed %.10s", v->reviewed != 0 ? reviewed : "(not said)");
    if (v->bundle_serial != 0) {
      rfc3339_format(v->bundle_created, created, sizeof(created));
      fprintf(out, "; bundle serial %llu created %s", (unsigned long long)v->bundle_serial,
              created);
    }
    fputs("; ", out);
    comment_text(out, v->where.file);
    fputc('\n', out);
  }
  if (w->ja4 > 0)
    fprintf(out, "%s %zu JA4 rule(s) not exported: no other layer sees a ClientHello\n", c, w->ja4);
  if (w->scoped > 0)
    fprintf(out,
            "%s %zu rule(s) not exported: their lists are in force for some client groups only\n",
            c, w->scoped);
  if (w->other_kind > 0)
    fprintf(out, "%s %zu %s rule(s) not exported: %s\n", c, w->other_kind,
            w->o->format->names ? "network" : "host",
            w->o->format->names ? "networks go to --format nft-set (or rpz)"
                                : "a set holds addresses; names go to the DNS formats");
}

/* Writes the items the format can say; the others go to the refused list. */
static void write_items(struct walk *w, FILE *out) {
  const struct export_format *f = w->o->format;
  char what[300];
  f->begin(out, w->o->now);
  for (size_t i = 0; i < w->n; i++) {
    const struct item *it = &w->items[i];
    const char *why = f->refuse(it);
    bool dup = false;
    for (size_t j = 0; j < w->n && !dup && why == NULL; j++)
      dup = covered(it, &w->items[j]);
    if (dup)
      continue;
    if (why == NULL) {
      f->write(out, it);
      continue;
    }
    snprintf(what, sizeof(what), "%s%s",
             it->kind == ITEM_STRICT ? "*."
             : it->kind == ITEM_INCL ? "."
                                     : "",
             it->text);
    refuse(w, it->rule, what, why);
  }
  f->end(out);
}

int export_policy(const struct policy *p, const struct export_opts *o, FILE *out, FILE *err) {
  struct walk w = {.p = p, .o = o};
  char *body = NULL, *refused = NULL;
  size_t body_len = 0, refused_len = 0;
  FILE *b = open_memstream(&body, &body_len);
  int rc = -ENOMEM;
  w.refused = open_memstream(&refused, &refused_len);
  if (b != NULL && w.refused != NULL && (rc = collect(&w)) == 0)
    write_items(&w, b);
  if (b != NULL)
    fclose(b);
  if (w.refused != NULL)
    fclose(w.refused);
  if (rc == 0) {
    header(&w, out);
    if (w.nrefused > 0)
      fprintf(out, "%s %zu entr%s not expressed in %s (left out):\n", o->format->comment,
              w.nrefused, w.nrefused == 1 ? "y" : "ies", o->format->name);
    for (char *line = refused; w.nrefused > 0 && *line;) { /* each one commented */
      char *nl = strchr(line, '\n');
      fprintf(out, "%s%.*s\n", o->format->comment, (int)(nl - line), line);
      line = nl + 1;
    }
    fwrite(body, 1, body_len, out);
    if (w.nrefused > 0)
      fprintf(err,
              "embargo: export: %zu entr%s cannot be written as %s with Embargo's meaning "
              "and %s left out:\n%s",
              w.nrefused, w.nrefused == 1 ? "y" : "ies", o->format->name,
              w.nrefused == 1 ? "is" : "are", refused);
  }
  free(body);
  free(refused);
  free(w.items);
  return rc;
}

/* ---- the command ------------------------------------------------------------ */

static int usage(const char *why) {
  fprintf(stderr,
          "embargo: export: %s\n\nUsage:\n  embargo export --format %s\n"
          "                 [--vendor V] [--category C] [--action deny|log|any]\n"
          "                 [-c CONFIG] [--now RFC3339]\n",
          why, export_format_names());
  return EXIT_USAGE;
}

static int parse_action(const char *s, struct export_opts *o) {
  memset(o->want, 0, sizeof(o->want));
  if (strcmp(s, "any") == 0)
    o->want[ACTION_DENY] = o->want[ACTION_LOG] = true;
  else if (strcmp(s, "deny") == 0)
    o->want[ACTION_DENY] = true;
  else if (strcmp(s, "log") == 0)
    o->want[ACTION_LOG] = true;
  else
    return -1;
  return 0;
}

static int parse_export_options(int argc, char **argv, struct export_opts *o, const char **config) {
  static const struct option longopts[] = {{"format", required_argument, NULL, 'f'},
                                           {"vendor", required_argument, NULL, 'V'},
                                           {"category", required_argument, NULL, 'C'},
                                           {"action", required_argument, NULL, 'a'},
                                           {"config", required_argument, NULL, 'c'},
                                           {"now", required_argument, NULL, 'n'},
                                           {0}};
  int ch;
  optind = 0; /* glibc: start afresh (an earlier scan used other settings) */
  while ((ch = getopt_long(argc, argv, "c:n:", longopts, NULL)) != -1) {
    switch (ch) {
    case 'f':
      if ((o->format = export_format_find(optarg)) == NULL)
        return usage("--format: expected one of rpz, unbound, dnsmasq, hosts, nft-set, squid");
      break;
    case 'V': o->vendor = optarg; break;
    case 'C': o->category = optarg; break;
    case 'a':
      if (parse_action(optarg, o) != 0)
        return usage("--action: expected deny, log or any");
      break;
    case 'c': *config = optarg; break;
    case 'n':
      if (rfc3339_parse(optarg, strlen(optarg), &o->now) != 0)
        return usage("--now: expected an RFC 3339 time like 2024-09-29T04:00:00Z");
      break;
    default: return usage("unknown option");
    }
  }
  if (optind != argc)
    return usage("unexpected argument");
  if (o->format == NULL)
    return usage("--format is required");
  return 0;
}

/* Refuses a --vendor or --category the policy does not have: an empty
 * export for a typo would look like a list with nothing in it. */
static int check_selection(const struct policy *p, const struct export_opts *o) {
  bool vendor = o->vendor == NULL, category = o->category == NULL;
  for (size_t i = 0; i < policy_vendor_count(p); i++) {
    const struct vendor *v = policy_vendor_at(p, i);
    if (o->vendor != NULL && strcmp(v->id, o->vendor) != 0)
      continue;
    vendor = true;
    category = category || policy_find_category(v, o->category) != NULL;
  }
  if (!vendor)
    fprintf(stderr, "embargo: export: no vendor list '%s' in the configuration\n", o->vendor);
  else if (!category)
    fprintf(stderr, "embargo: export: no category '%s'%s%s\n", o->category,
            o->vendor ? " in vendor list " : "", o->vendor ? o->vendor : "");
  return vendor && category ? 0 : EXIT_USAGE;
}

int export_main(const char *config, int64_t now, int argc, char **argv) {
  struct export_opts o = {.now = now};
  struct config cfg;
  char err[1024];
  int rc;
  o.want[ACTION_DENY] = true;
  if ((rc = parse_export_options(argc, argv, &o, &config)) != 0)
    return rc;
  if (o.now == 0)
    o.now = (int64_t)time(NULL);
  memset(&cfg, 0, sizeof(cfg));
  if ((config ? config_load_file(&cfg, config, err, sizeof(err))
              : config_load_default(&cfg, err, sizeof(err))) != 0) {
    fprintf(stderr, "embargo: %s\n", err);
    return EXIT_USAGE;
  }
  if (cfg.lists.note[0] != '\0')
    fprintf(stderr, "embargo: lists: %s\n", cfg.lists.note);
  rc = check_selection(cfg.policy, &o);
  if (rc == 0 && export_policy(cfg.policy, &o, stdout, stderr) != 0) {
    fprintf(stderr, "embargo: export: out of memory\n");
    rc = 1;
  }
  config_free(&cfg);
  return rc;
}
