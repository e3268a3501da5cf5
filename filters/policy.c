/* The policy snapshot (vendor lists, exceptions, switches) and the pure
 * decision function. A snapshot is built once by config/, then shared
 * read-only and refcounted; nothing in it changes after the build. */
#include "filters/policy.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "filters/clientgroups.h"
#include "filters/dommatch.h"
#include "filters/netmatch.h"
#include <stdio.h>
#include <sys/socket.h>
#include "filters/err.h"

#define ARENA_BLOCK 4096

_Static_assert(POLICY_MAX_GROUPS == CLIENTGROUPS_MAX, "a set of groups is one 64-bit mask");

/* Bump allocator for everything that must not move once handed out:
 * strings, vendors, rules. Freed all at once with the snapshot. */
struct arena_block {
  struct arena_block *next;
  size_t used;
  size_t size;
  alignas(max_align_t) unsigned char data[];
};

/* A host rule plus the index of its category, so the rule can be re-pointed
 * when the vendor's category array grows. */
struct rule_node {
  struct rule rule;
  size_t category_index;
};

/* A growable array of pointers to arena objects. */
struct ptrvec {
  void **items;
  size_t n;
  size_t cap;
};

/* The matchers of one audience's vendor rules: those of every list in
 * force for all clients, or those of one list scoped to client groups. A
 * scoped list gets matchers of its own so that its patterns never hide a
 * less specific one of another list from clients it is not in force for. */
struct ruleset {
  const struct vendor *vendor; /* the scoped list, or NULL: every unscoped one */
  struct dommatch *hosts;      /* pattern -> struct rule * */
  struct netmatch *nets;       /* prefix -> struct rule * (RULE_NETWORK) */
  struct dommatch *ja4s;       /* fingerprint -> struct rule * (RULE_JA4) */
  struct pathmatch *paths;     /* path pattern -> struct rule * (RULE_PATH) */
};

/* The exceptions for one set of client groups (0: every client). */
struct excset {
  uint64_t groups;
  struct dommatch *allow; /* pattern -> struct exception_rule * */
};

struct policy {
  atomic_uint refs;
  struct arena_block *arena;
  struct ptrvec vendors;    /* struct vendor *, in declaration order */
  struct ptrvec rules;      /* struct rule_node * */
  struct ptrvec exceptions; /* struct exception_rule * */
  struct ruleset all;       /* rules of the lists in force for every client */
  struct ptrvec scoped;     /* struct ruleset *: one per list scoped to groups */
  struct ptrvec excsets;    /* struct excset *: every client's first, then per set */
  size_t counts[4];         /* rules per enum rule_kind */
  bool monitor;
  const char *profile;      /* interned; NULL: none set */
  const char *last_file;    /* the file name interned last (an origin's) */
  struct ptrvec sources;    /* struct policy_source *, in load order */
  char version[24];
  struct clientgroups *groups; /* owned */
};

static const char *const action_names[] = {
  [ACTION_ALLOW] = "allow",
  [ACTION_LOG] = "log",
  [ACTION_DENY] = "deny",
};

/* Returns SIZE zeroed bytes aligned to ALIGN (a power of two), owned by
 * P, or NULL. */
static void *arena_alloc_aligned(struct policy *p, size_t size, size_t align) {
  struct arena_block *b = p->arena;
  size_t start = b != NULL ? (b->used + align - 1) & ~(align - 1) : 0;
  if (b == NULL || start > b->size || b->size - start < size) {
    size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
    b = malloc(sizeof(*b) + cap);
    if (b == NULL)
      return NULL;
    b->next = p->arena;
    b->size = cap;
    p->arena = b;
    start = 0;
  }
  void *out = b->data + start;
  b->used = start + size;
  memset(out, 0, size);
  return out;
}

/* Returns SIZE zeroed bytes aligned for any type, owned by P, or NULL. */
static void *arena_alloc(struct policy *p, size_t size) {
  return arena_alloc_aligned(p, size, alignof(max_align_t));
}

static void arena_free(struct arena_block *b) {
  while (b != NULL) {
    struct arena_block *next = b->next;
    free(b);
    b = next;
  }
}

/* Appends ITEM (borrowed) to V. Returns 0 or -ENOMEM. */
static int ptrvec_push(struct ptrvec *v, void *item) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 16;
    void **items = realloc(v->items, cap * sizeof(*items));
    if (items == NULL)
      return -ENOMEM;
    v->items = items;
    v->cap = cap;
  }
  v->items[v->n++] = item;
  return 0;
}

static int ruleset_init(struct ruleset *rs, const struct vendor *v) {
  *rs = (struct ruleset){.vendor = v,
                         .hosts = dommatch_new(),
                         .nets = netmatch_new(),
                         .ja4s = dommatch_new(),
                         .paths = pathmatch_new()};
  return rs->hosts && rs->nets && rs->ja4s && rs->paths ? 0 : -ENOMEM;
}

static void ruleset_free(struct ruleset *rs) {
  dommatch_free(rs->hosts);
  netmatch_free(rs->nets);
  dommatch_free(rs->ja4s);
  pathmatch_free(rs->paths);
}

/* The exception set of GROUPS, made if need be; NULL on ENOMEM. */
static struct excset *excset_of(struct policy *p, uint64_t groups);

struct policy *policy_new(void) {
  struct policy *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  atomic_init(&p->refs, 1);
  p->groups = clientgroups_new();
  if (ruleset_init(&p->all, NULL) < 0 || excset_of(p, 0) == NULL || p->groups == NULL) {
    policy_unref(p);
    return NULL;
  }
  return p;
}

const char *policy_strdup(struct policy *p, const char *s) {
  if (s == NULL)
    return NULL;
  size_t len = strlen(s);
  char *out = arena_alloc_aligned(p, len + 1, 1); /* text packs: a million patterns */
  if (out != NULL)
    memcpy(out, s, len + 1);
  return out;
}

/* Interns WHERE's file name so origins outlive the loader: one copy per
 * file in a row (every rule of a list comes from its file), not one per
 * rule. */
static int intern_origin(struct policy *p, struct origin *where) {
  if (where->file == NULL)
    return 0;
  if (p->last_file == NULL || strcmp(p->last_file, where->file) != 0)
    p->last_file = policy_strdup(p, where->file);
  where->file = p->last_file;
  return where->file != NULL ? 0 : -ENOMEM;
}

const struct vendor *policy_find_vendor(const struct policy *p, const char *id) {
  for (size_t i = 0; i < p->vendors.n; i++) {
    const struct vendor *v = p->vendors.items[i];
    if (strcmp(v->id, id) == 0)
      return v;
  }
  return NULL;
}

struct vendor *policy_add_vendor(struct policy *p, const char *id, const char *name,
                                 const char *reference, struct origin where, int *err) {
  if (policy_find_vendor(p, id) != NULL) {
    *err = EMB_EDUPLICATE;
    return NULL;
  }
  *err = -ENOMEM;
  struct vendor *v = arena_alloc(p, sizeof(*v));
  if (v == NULL || intern_origin(p, &where) < 0)
    return NULL;
  v->id = policy_strdup(p, id);
  v->name = policy_strdup(p, name != NULL ? name : id);
  v->reference = reference != NULL ? policy_strdup(p, reference) : NULL;
  v->where = where;
  if (v->id == NULL || v->name == NULL || (reference != NULL && v->reference == NULL))
    return NULL;
  if (ptrvec_push(&p->vendors, v) < 0)
    return NULL;
  *err = 0;
  return v;
}

const struct category *policy_find_category(const struct vendor *v, const char *name) {
  for (size_t i = 0; i < v->ncategories; i++) {
    if (strcmp(v->categories[i].name, name) == 0)
      return &v->categories[i];
  }
  return NULL;
}

/* The category array of V moved: re-point V's rules into the new array. */
static void rules_repoint(struct policy *p, const struct vendor *v) {
  for (size_t i = 0; i < p->rules.n; i++) {
    struct rule_node *node = p->rules.items[i];
    if (node->rule.vendor == v)
      node->rule.category = &v->categories[node->category_index];
  }
}

struct category *policy_add_category(struct policy *p, struct vendor *v, const char *name,
                                     int64_t cutoff, enum action before, enum action after,
                                     struct origin where, int *err) {
  if (policy_find_category(v, name) != NULL) {
    *err = EMB_EDUPLICATE;
    return NULL;
  }
  *err = -ENOMEM;
  const char *iname = policy_strdup(p, name);
  if (iname == NULL || intern_origin(p, &where) < 0)
    return NULL;
  struct category *cats = realloc(v->categories, (v->ncategories + 1) * sizeof(*cats));
  if (cats == NULL)
    return NULL;
  v->categories = cats;
  rules_repoint(p, v);
  struct category *c = &cats[v->ncategories++];
  *c = (struct category){
    .name = iname, .cutoff = cutoff, .before = before, .after = after, .where = where};
  *err = 0;
  return c;
}

/* Whether the rules of lists A and B share matchers. */
static bool same_set(const struct vendor *a, const struct vendor *b) {
  return a == b || (a->groups == 0 && b->groups == 0);
}

/* On a duplicate pattern, reports where the first one was declared. */
static void find_dup_rule(const struct policy *p, const struct rule *r, struct origin *dup_where) {
  for (size_t i = 0; dup_where != NULL && i < p->rules.n; i++) {
    const struct rule_node *node = p->rules.items[i];
    if (node->rule.kind == r->kind && same_set(node->rule.vendor, r->vendor) &&
        strcmp(node->rule.pattern, r->pattern) == 0) {
      *dup_where = node->rule.where;
      return;
    }
  }
}

/* The matchers V's rules go to, made for a scoped list on its first rule;
 * NULL on ENOMEM. */
static struct ruleset *ruleset_of(struct policy *p, const struct vendor *v) {
  if (v->groups == 0)
    return &p->all;
  for (size_t i = 0; i < p->scoped.n; i++) {
    struct ruleset *rs = p->scoped.items[i];
    if (rs->vendor == v)
      return rs;
  }
  struct ruleset *rs = arena_alloc(p, sizeof(*rs));
  if (rs == NULL)
    return NULL;
  if (ruleset_init(rs, v) < 0 || ptrvec_push(&p->scoped, rs) < 0) {
    ruleset_free(rs);
    return NULL;
  }
  return rs;
}

/* Allocates a rule of KIND for V/C, interned. NULL on ENOMEM. */
static struct rule_node *rule_new(struct policy *p, enum rule_kind kind, const struct vendor *v,
                                  const struct category *c, const char *pattern,
                                  struct origin where) {
  assert(c >= v->categories && c < v->categories + v->ncategories);
  struct rule_node *node = arena_alloc(p, sizeof(*node));
  if (node == NULL || intern_origin(p, &where) < 0)
    return NULL;
  node->rule = (struct rule){.kind = kind,
                             .pattern = policy_strdup(p, pattern),
                             .vendor = v,
                             .category = c,
                             .where = where};
  node->category_index = (size_t)(c - v->categories);
  return node->rule.pattern != NULL ? node : NULL;
}

/* Records NODE once its matcher accepted it (RC); reports duplicates. */
static int rule_added(struct policy *p, struct rule_node *node, int rc, struct origin *dup_where) {
  if (rc == EMB_EDUPLICATE)
    find_dup_rule(p, &node->rule, dup_where);
  if (rc < 0)
    return rc;
  p->counts[node->rule.kind]++;
  return ptrvec_push(&p->rules, node);
}

int policy_add_host(struct policy *p, const struct vendor *v, const struct category *c,
                    const char *pattern, struct origin where, struct origin *dup_where) {
  struct rule_node *node = rule_new(p, RULE_HOST, v, c, pattern, where);
  struct ruleset *rs = ruleset_of(p, v);
  if (node == NULL || rs == NULL)
    return -ENOMEM;
  return rule_added(p, node, dommatch_add(rs->hosts, pattern, strlen(pattern), &node->rule),
                    dup_where);
}

int policy_add_network(struct policy *p, const struct vendor *v, const struct category *c,
                       const struct cidr *net, enum confidence confidence, struct origin where,
                       struct origin *dup_where) {
  char text[64];
  cidr_format(net, text, sizeof(text));
  struct rule_node *node = rule_new(p, RULE_NETWORK, v, c, text, where);
  struct ruleset *rs = ruleset_of(p, v);
  if (node == NULL || rs == NULL)
    return -ENOMEM;
  node->rule.confidence = confidence;
  return rule_added(p, node, netmatch_add(rs->nets, net, &node->rule), dup_where);
}

int policy_add_ja4(struct policy *p, const struct vendor *v, const struct category *c,
                   const char *ja4, enum confidence confidence, struct origin where,
                   struct origin *dup_where) {
  struct rule_node *node = rule_new(p, RULE_JA4, v, c, ja4, where);
  struct ruleset *rs = ruleset_of(p, v);
  if (node == NULL || rs == NULL)
    return -ENOMEM;
  node->rule.confidence = confidence;
  return rule_added(p, node, dommatch_add(rs->ja4s, ja4, strlen(ja4), &node->rule), dup_where);
}

int policy_add_path(struct policy *p, const struct vendor *v, const struct category *c,
                    const char *pattern, struct origin where, struct origin *dup_where) {
  struct rule_node *node = rule_new(p, RULE_PATH, v, c, pattern, where);
  struct ruleset *rs = ruleset_of(p, v);
  if (node == NULL || rs == NULL)
    return -ENOMEM;
  return rule_added(p, node, pathmatch_add(rs->paths, pattern, strlen(pattern), &node->rule),
                    dup_where);
}

int policy_add_left_out(struct policy *p, struct vendor *v, const char *name,
                        const char *reason, struct origin where) {
  struct left_out *items;
  if (intern_origin(p, &where) < 0)
    return -ENOMEM;
  /* Arena memory cannot grow in place: copy into a block one larger. */
  items = arena_alloc(p, (v->nleft_out + 1) * sizeof(*items));
  if (items == NULL)
    return -ENOMEM;
  if (v->nleft_out > 0)
    memcpy(items, v->left_out, v->nleft_out * sizeof(*items));
  items[v->nleft_out] = (struct left_out){
      .name = policy_strdup(p, name), .reason = policy_strdup(p, reason), .where = where};
  if (items[v->nleft_out].name == NULL || items[v->nleft_out].reason == NULL)
    return -ENOMEM;
  v->left_out = items;
  v->nleft_out++;
  return 0;
}

struct category *policy_edit_category(struct vendor *v, const char *name) {
  return (struct category *)policy_find_category(v, name);
}

static void find_dup_exception(const struct policy *p, const char *pattern, uint64_t groups,
                               struct origin *dup_where) {
  for (size_t i = 0; dup_where != NULL && i < p->exceptions.n; i++) {
    const struct exception_rule *e = p->exceptions.items[i];
    if (e->groups == groups && strcmp(e->pattern, pattern) == 0) {
      *dup_where = e->where;
      return;
    }
  }
}

static struct excset *excset_of(struct policy *p, uint64_t groups) {
  for (size_t i = 0; i < p->excsets.n; i++) {
    struct excset *x = p->excsets.items[i];
    if (x->groups == groups)
      return x;
  }
  struct excset *x = arena_alloc(p, sizeof(*x));
  if (x == NULL)
    return NULL;
  x->groups = groups;
  x->allow = dommatch_new();
  if (x->allow == NULL || ptrvec_push(&p->excsets, x) < 0) {
    dommatch_free(x->allow);
    return NULL;
  }
  return x;
}

int policy_add_exception(struct policy *p, const char *pattern, int64_t expires,
                         const char *reason, struct origin where, struct origin *dup_where) {
  return policy_add_exception_for(p, pattern, expires, reason, 0, where, dup_where);
}

int policy_add_exception_for(struct policy *p, const char *pattern, int64_t expires,
                             const char *reason, uint64_t groups, struct origin where,
                             struct origin *dup_where) {
  struct exception_rule *e = arena_alloc(p, sizeof(*e));
  struct excset *x = excset_of(p, groups);
  if (e == NULL || x == NULL || intern_origin(p, &where) < 0)
    return -ENOMEM;
  *e = (struct exception_rule){.pattern = policy_strdup(p, pattern),
                               .expires = expires,
                               .reason = policy_strdup(p, reason),
                               .groups = groups,
                               .where = where};
  if (e->pattern == NULL || (reason != NULL && e->reason == NULL))
    return -ENOMEM;
  int rc = dommatch_add(x->allow, pattern, strlen(pattern), e);
  if (rc == EMB_EDUPLICATE)
    find_dup_exception(p, pattern, groups, dup_where);
  if (rc < 0)
    return rc;
  return ptrvec_push(&p->exceptions, e);
}

/* ---- client groups ---------------------------------------------------------- */

int policy_add_group(struct policy *p, const char *name, size_t *index) {
  return clientgroups_add(p->groups, name, index);
}

int policy_add_group_network(struct policy *p, size_t index, const struct cidr *net) {
  return clientgroups_add_network(p->groups, index, net);
}

int policy_group_find(const struct policy *p, const char *name) {
  return clientgroups_find(p->groups, name);
}

size_t policy_group_count(const struct policy *p) {
  return clientgroups_count(p->groups);
}

const char *policy_group_name(const struct policy *p, size_t i) {
  return clientgroups_name(p->groups, i);
}

void policy_group_networks(const struct policy *p, size_t i, char *buf, size_t size) {
  clientgroups_networks(p->groups, i, buf, size);
}

uint64_t policy_client_groups(const struct policy *p, int family, const uint8_t *addr) {
  return clientgroups_of(p->groups, family, addr);
}

void policy_format_groups(const struct policy *p, uint64_t groups, char *buf, size_t size) {
  clientgroups_format(p->groups, groups, buf, size);
}

int policy_add_scope(struct policy *p, struct category *c, size_t at,
                     const struct category_scope *s) {
  /* Arena memory cannot grow in place: copy into a block one larger. */
  struct category_scope *items = arena_alloc(p, (c->nscopes + 1) * sizeof(*items));
  if (items == NULL)
    return -ENOMEM;
  if (at > c->nscopes)
    at = c->nscopes;
  if (at > 0)
    memcpy(items, c->scopes, at * sizeof(*items));
  items[at] = *s;
  if (c->nscopes > at)
    memcpy(items + at + 1, c->scopes + at, (c->nscopes - at) * sizeof(*items));
  c->scopes = items;
  c->nscopes++;
  return 0;
}

struct category_scope category_actions(const struct category *c) {
  return (struct category_scope){.before = c->before,
                                 .after = c->after,
                                 .before_from = c->before_from,
                                 .after_from = c->after_from,
                                 .preset = c->preset,
                                 .basis = c->basis,
                                 .override_where = c->override_where};
}

struct category_scope verdict_actions(const struct verdict *v) {
  return v->scope != NULL ? *v->scope : category_actions(v->rule->category);
}

void policy_set_monitor(struct policy *p, bool monitor) {
  p->monitor = monitor;
}

int policy_set_profile(struct policy *p, const char *profile) {
  p->profile = policy_strdup(p, profile);
  return p->profile != NULL ? 0 : -ENOMEM;
}

const char *policy_profile(const struct policy *p) {
  return p->profile != NULL ? p->profile : "";
}

int policy_add_source(struct policy *p, const char *name, const char *sha256) {
  struct policy_source *src = arena_alloc(p, sizeof(*src));
  if (src == NULL || (src->name = policy_strdup(p, name)) == NULL)
    return -ENOMEM;
  snprintf(src->sha256, sizeof(src->sha256), "%s", sha256);
  return ptrvec_push(&p->sources, src);
}

size_t policy_source_count(const struct policy *p) {
  return p->sources.n;
}

const struct policy_source *policy_source_at(const struct policy *p, size_t i) {
  return i < p->sources.n ? p->sources.items[i] : NULL;
}

void policy_set_version(struct policy *p, const char *version) {
  snprintf(p->version, sizeof(p->version), "%s", version);
}

const char *policy_version(const struct policy *p) {
  return p != NULL ? p->version : "";
}

struct policy *policy_ref(struct policy *p) {
  atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
  return p;
}

void policy_unref(struct policy *p) {
  if (p == NULL)
    return;
  /* acq_rel: every reader's last use happens before the free. */
  if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < p->vendors.n; i++) {
    struct vendor *v = p->vendors.items[i];
    free(v->categories);
  }
  for (size_t i = 0; i < p->scoped.n; i++)
    ruleset_free(p->scoped.items[i]);
  for (size_t i = 0; i < p->excsets.n; i++)
    dommatch_free(((struct excset *)p->excsets.items[i])->allow);
  ruleset_free(&p->all);
  clientgroups_free(p->groups);
  free(p->vendors.items);
  free(p->rules.items);
  free(p->exceptions.items);
  free(p->sources.items);
  free(p->scoped.items);
  free(p->excsets.items);
  arena_free(p->arena);
  free(p);
}

/* An IP literal matches only a pattern that is exactly its text: a glob or
 * suffix pattern written for names must never catch an address. */
static bool host_fits(const struct host *h, const char *pattern) {
  return h->kind == HOST_NAME || strcmp(pattern, h->name) == 0;
}

/* One pass of policy_decide over one audience's rules. */
struct judging {
  const struct policy *p;
  const struct ruleset *rs;
  const struct facts *f;
  int64_t now;
};

static const struct rule *find_rule(const struct ruleset *rs, const struct host *h) {
  const struct rule *r = dommatch_lookup(rs->hosts, h->name, h->len);
  return r != NULL && host_fits(h, r->pattern) ? r : NULL;
}

/* The unexpired exception for H that applies to a client of GROUPS: in
 * each set in force for it (every client's first), the most specific
 * match, if unexpired; NULL if none. */
static const struct exception_rule *find_exception(const struct policy *p, const struct host *h,
                                                   uint64_t groups, int64_t now) {
  for (size_t i = 0; i < p->excsets.n; i++) {
    const struct excset *x = p->excsets.items[i];
    if (x->groups != 0 && !(x->groups & groups))
      continue; /* never opens for a client outside its groups */
    const struct exception_rule *e = dommatch_lookup(x->allow, h->name, h->len);
    if (e != NULL && host_fits(h, e->pattern) && now < e->expires)
      return e;
  }
  return NULL;
}

int action_strength(enum action a) {
  return a == ACTION_DENY ? 2 : a == ACTION_LOG ? 1 : 0;
}

/* C's first scope for a client of GROUPS, or NULL. */
static const struct category_scope *find_scope(const struct category *c, uint64_t groups) {
  for (size_t i = 0; groups != 0 && i < c->nscopes; i++) {
    const struct category_scope *s = &c->scopes[i];
    if ((s->groups & groups) && (s->also == 0 || (s->also & groups)))
      return s;
  }
  return NULL;
}

/* The verdict of RULE alone, with exception E (unexpired, may be NULL)
 * applied. */
static void judge(const struct judging *jg, const struct rule *rule, const struct exception_rule *e,
                  struct verdict *v) {
  const struct category *c = rule->category;
  const uint64_t groups = jg->f->groups;
  const struct category_scope *s = find_scope(c, groups);
  v->rule = rule;
  v->reason = VERDICT_VENDOR;
  v->scope = s;
  v->after_cutoff = jg->now >= c->cutoff;
  if (s != NULL) {
    v->rule_action = v->after_cutoff ? s->after : s->before;
    v->from = v->after_cutoff ? s->after_from : s->before_from;
  } else {
    v->rule_action = v->after_cutoff ? c->after : c->before;
    v->from = v->after_cutoff ? c->after_from : c->before_from;
  }
  v->action = v->rule_action;
  v->hint = rule->confidence == CONFIDENCE_HINT;
  if (v->hint && v->action == ACTION_DENY)
    v->action = ACTION_LOG;
  v->client_group = clientgroups_first(jg->p->groups, (s != NULL ? s->groups : rule->vendor->groups) & groups);
  if (e != NULL) {
    v->reason = VERDICT_EXCEPTION;
    v->exception = e;
    v->action = ACTION_LOG;
    v->client_group = clientgroups_first(jg->p->groups, e->groups & groups);
  }
}

/* Copies S (may be NULL) into V's own matched text, truncated to fit. */
static void set_matched(struct verdict *v, const char *s) {
  size_t n = s != NULL ? strnlen(s, sizeof(v->matched) - 1) : 0;
  memcpy(v->matched, s != NULL ? s : "", n);
  v->matched[n] = '\0';
}

/* Keeps CAND in BEST if it is stricter, or the first match at all. */
static void keep_stricter(struct verdict *best, const struct verdict *cand) {
  if (cand->rule == NULL)
    return;
  if (best->rule == NULL || action_strength(cand->action) > action_strength(best->action))
    *best = *cand;
}

/* Judges one name (requested host, SNI or CNAME) against the host rules. */
static void judge_name(const struct judging *jg, const char *name, enum match_on on,
                       const struct exception_rule *inherited, struct verdict *best) {
  struct host h = {.kind = HOST_NAME, .len = strlen(name)};
  struct verdict cand = {.on = on};
  if (h.len > HOST_NAME_MAX_LEN)
    return;
  memcpy(h.name, name, h.len + 1);
  const struct rule *rule = find_rule(jg->rs, &h);
  if (rule == NULL)
    return;
  set_matched(&cand, name);
  const struct exception_rule *e = find_exception(jg->p, &h, jg->f->groups, jg->now);
  judge(jg, rule, e != NULL ? e : inherited, &cand);
  keep_stricter(best, &cand);
}

static void judge_address(const struct judging *jg, const struct ip_addr *a,
                          const struct exception_rule *inherited, struct verdict *best) {
  struct verdict cand = {.on = MATCH_ADDRESS};
  const struct rule *rule = netmatch_lookup(jg->rs->nets, a->family, a->addr, NULL);
  if (rule == NULL)
    return;
  judge(jg, rule, inherited, &cand);
  struct cidr one = {.family = a->family, .bits = a->family == AF_INET ? 32 : 128};
  memcpy(one.addr, a->addr, sizeof(one.addr));
  cidr_format(&one, cand.matched, sizeof(cand.matched));
  char *slash = strchr(cand.matched, '/');
  if (slash != NULL)
    *slash = '\0';
  keep_stricter(best, &cand);
}

/* Judges a plain-HTTP request's path against the path rules; the matched
 * text is the path as sent (truncated to fit). */
static void judge_path(const struct judging *jg, const char *path, size_t len,
                       const struct exception_rule *inherited, struct verdict *best) {
  struct verdict cand = {.on = MATCH_PATH};
  const struct rule *rule = pathmatch_lookup(jg->rs->paths, path, len);
  if (rule == NULL)
    return;
  judge(jg, rule, inherited, &cand);
  size_t n = len < sizeof(cand.matched) - 1 ? len : sizeof(cand.matched) - 1;
  memcpy(cand.matched, path, n);
  cand.matched[n] = '\0';
  keep_stricter(best, &cand);
}

/* Judges every fact against one audience's rules into OUT. HOST_EXC is the
 * exception for the requested host, which covers its chain, addresses and
 * path. */
static void judge_facts(const struct judging *jg, const struct exception_rule *host_exc,
                        struct verdict *out) {
  const struct facts *facts = jg->f;
  const struct host *h = facts->host;
  struct verdict cand;
  if (h != NULL) {
    const struct rule *rule = find_rule(jg->rs, h);
    if (rule != NULL) {
      cand = (struct verdict){.on = MATCH_HOST};
      set_matched(&cand, h->name);
      judge(jg, rule, host_exc, &cand);
      keep_stricter(out, &cand);
    }
    if (h->kind != HOST_NAME) {
      struct ip_addr a = {.family = h->kind == HOST_IPV4 ? AF_INET : AF_INET6};
      memcpy(a.addr, h->addr, sizeof(a.addr));
      judge_address(jg, &a, host_exc, out);
    }
  }
  for (size_t i = 0; i < facts->nsni; i++)
    judge_name(jg, facts->sni[i], MATCH_SNI, NULL, out);
  for (size_t i = 0; i < facts->ncnames; i++)
    judge_name(jg, facts->cnames[i], MATCH_CNAME, host_exc, out);
  for (size_t i = 0; i < facts->naddrs; i++)
    judge_address(jg, &facts->addrs[i], host_exc, out);
  if (facts->ja4 != NULL) {
    const struct rule *rule = dommatch_lookup(jg->rs->ja4s, facts->ja4, strlen(facts->ja4));
    if (rule != NULL) {
      cand = (struct verdict){.on = MATCH_JA4};
      set_matched(&cand, facts->ja4);
      judge(jg, rule, NULL, &cand);
      keep_stricter(out, &cand);
    }
  }
  if (facts->path != NULL)
    judge_path(jg, facts->path, facts->path_len, host_exc, out);
}

void policy_decide(const struct policy *p, const struct facts *facts, int64_t now,
                   struct verdict *out) {
  const struct host *h = facts->host;
  struct judging jg = {.p = p, .rs = &p->all, .f = facts, .now = now};
  const struct exception_rule *host_exc =
      h != NULL ? find_exception(p, h, facts->groups, now) : NULL;

  *out = (struct verdict){
      .action = ACTION_ALLOW, .rule_action = ACTION_ALLOW, .reason = VERDICT_NO_MATCH};
  set_matched(out, h != NULL ? h->name : NULL);
  judge_facts(&jg, host_exc, out);
  /* The lists scoped to the client's groups, each with its own matchers. */
  for (size_t i = 0; facts->groups != 0 && i < p->scoped.n; i++) {
    jg.rs = p->scoped.items[i];
    if (jg.rs->vendor->groups & facts->groups)
      judge_facts(&jg, host_exc, out);
  }
  if (p->monitor && out->action == ACTION_DENY) {
    out->action = ACTION_LOG;
    out->monitor = true;
  }
}

bool policy_monitor(const struct policy *p) {
  return p->monitor;
}

size_t policy_vendor_count(const struct policy *p) {
  return p->vendors.n;
}

const struct vendor *policy_vendor_at(const struct policy *p, size_t i) {
  return i < p->vendors.n ? p->vendors.items[i] : NULL;
}

size_t policy_host_count(const struct policy *p) {
  return p->counts[RULE_HOST];
}

size_t policy_network_count(const struct policy *p) {
  return p->counts[RULE_NETWORK];
}

size_t policy_ja4_count(const struct policy *p) {
  return p->counts[RULE_JA4];
}

size_t policy_path_count(const struct policy *p) {
  return p->counts[RULE_PATH];
}

size_t policy_rule_count(const struct policy *p) {
  return p->rules.n;
}

const char *match_on_name(enum match_on on) {
  static const char *const names[] = {"none", "host", "sni", "cname", "address", "ja4", "path"};
  return (unsigned)on < sizeof(names) / sizeof(names[0]) ? names[on] : "?";
}

const char *action_from_name(enum action_from from) {
  static const char *const names[] = {"list", "preset", "override"};
  return (unsigned)from < sizeof(names) / sizeof(names[0]) ? names[from] : "?";
}

size_t policy_exception_count(const struct policy *p) {
  return p->exceptions.n;
}

const struct rule *policy_rule_at(const struct policy *p, size_t i) {
  return i < p->rules.n ? &((const struct rule_node *)p->rules.items[i])->rule : NULL;
}

const struct exception_rule *policy_exception_at(const struct policy *p, size_t i) {
  return i < p->exceptions.n ? p->exceptions.items[i] : NULL;
}

const char *action_name(enum action a) {
  return (unsigned)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[a] : "?";
}

int action_parse(const char *s, enum action *out) {
  for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
    if (strcmp(s, action_names[i]) == 0) {
      *out = (enum action)i;
      return 0;
    }
  }
  return -EINVAL;
}
