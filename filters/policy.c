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

#include "filters/dommatch.h"
#include "filters/err.h"

#define ARENA_BLOCK 4096

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
  struct host_rule rule;
  size_t category_index;
};

/* A growable array of pointers to arena objects. */
struct ptrvec {
  void **items;
  size_t n;
  size_t cap;
};

struct policy {
  atomic_uint refs;
  struct arena_block *arena;
  struct ptrvec vendors;    /* struct vendor *, in declaration order */
  struct ptrvec rules;      /* struct rule_node * */
  struct ptrvec exceptions; /* struct exception_rule * */
  struct dommatch *hosts;   /* pattern -> struct host_rule * */
  struct dommatch *allow;   /* pattern -> struct exception_rule * */
  bool monitor;
};

static const char *const action_names[] = {
  [ACTION_ALLOW] = "allow",
  [ACTION_LOG] = "log",
  [ACTION_DENY] = "deny",
};

/* Returns SIZE zeroed bytes aligned for any type, owned by P, or NULL. */
static void *arena_alloc(struct policy *p, size_t size) {
  size_t align = alignof(max_align_t);
  size = (size + align - 1) / align * align;
  struct arena_block *b = p->arena;
  if (b == NULL || b->size - b->used < size) {
    size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
    b = malloc(sizeof(*b) + cap);
    if (b == NULL)
      return NULL;
    b->next = p->arena;
    b->used = 0;
    b->size = cap;
    p->arena = b;
  }
  void *out = b->data + b->used;
  b->used += size;
  memset(out, 0, size);
  return out;
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

struct policy *policy_new(void) {
  struct policy *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  atomic_init(&p->refs, 1);
  p->hosts = dommatch_new();
  p->allow = dommatch_new();
  if (p->hosts == NULL || p->allow == NULL) {
    policy_unref(p);
    return NULL;
  }
  return p;
}

const char *policy_strdup(struct policy *p, const char *s) {
  if (s == NULL)
    return NULL;
  size_t len = strlen(s);
  char *out = arena_alloc(p, len + 1);
  if (out != NULL)
    memcpy(out, s, len + 1);
  return out;
}

/* Interns a copy of WHERE's file name so origins outlive the loader. */
static int intern_origin(struct policy *p, struct origin *where) {
  if (where->file == NULL)
    return 0;
  where->file = policy_strdup(p, where->file);
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

/* On a duplicate pattern, reports where the first one was declared. */
static void find_dup_rule(const struct policy *p, const char *pattern, struct origin *dup_where) {
  for (size_t i = 0; dup_where != NULL && i < p->rules.n; i++) {
    const struct rule_node *node = p->rules.items[i];
    if (strcmp(node->rule.pattern, pattern) == 0)
      *dup_where = node->rule.where;
  }
}

int policy_add_host(struct policy *p, const struct vendor *v, const struct category *c,
                    const char *pattern, struct origin where, struct origin *dup_where) {
  assert(c >= v->categories && c < v->categories + v->ncategories);
  struct rule_node *node = arena_alloc(p, sizeof(*node));
  if (node == NULL || intern_origin(p, &where) < 0)
    return -ENOMEM;
  node->rule = (struct host_rule){
    .pattern = policy_strdup(p, pattern), .vendor = v, .category = c, .where = where};
  node->category_index = (size_t)(c - v->categories);
  if (node->rule.pattern == NULL)
    return -ENOMEM;
  int rc = dommatch_add(p->hosts, pattern, strlen(pattern), &node->rule);
  if (rc == EMB_EDUPLICATE)
    find_dup_rule(p, pattern, dup_where);
  if (rc < 0)
    return rc;
  return ptrvec_push(&p->rules, node);
}

static void find_dup_exception(const struct policy *p, const char *pattern,
                               struct origin *dup_where) {
  for (size_t i = 0; dup_where != NULL && i < p->exceptions.n; i++) {
    const struct exception_rule *e = p->exceptions.items[i];
    if (strcmp(e->pattern, pattern) == 0)
      *dup_where = e->where;
  }
}

int policy_add_exception(struct policy *p, const char *pattern, int64_t expires,
                         const char *reason, struct origin where, struct origin *dup_where) {
  struct exception_rule *e = arena_alloc(p, sizeof(*e));
  if (e == NULL || intern_origin(p, &where) < 0)
    return -ENOMEM;
  *e = (struct exception_rule){.pattern = policy_strdup(p, pattern),
                               .expires = expires,
                               .reason = policy_strdup(p, reason),
                               .where = where};
  if (e->pattern == NULL || (reason != NULL && e->reason == NULL))
    return -ENOMEM;
  int rc = dommatch_add(p->allow, pattern, strlen(pattern), e);
  if (rc == EMB_EDUPLICATE)
    find_dup_exception(p, pattern, dup_where);
  if (rc < 0)
    return rc;
  return ptrvec_push(&p->exceptions, e);
}

void policy_set_monitor(struct policy *p, bool monitor) {
  p->monitor = monitor;
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
  free(p->vendors.items);
  free(p->rules.items);
  free(p->exceptions.items);
  dommatch_free(p->hosts);
  dommatch_free(p->allow);
  arena_free(p->arena);
  free(p);
}

/* An IP literal matches only a pattern that is exactly its text: a glob or
 * suffix pattern written for names must never catch an address. */
static bool host_fits(const struct host *h, const char *pattern) {
  return h->kind == HOST_NAME || strcmp(pattern, h->name) == 0;
}

static const struct host_rule *find_rule(const struct policy *p, const struct host *h) {
  const struct host_rule *r = dommatch_lookup(p->hosts, h->name, h->len);
  return r != NULL && host_fits(h, r->pattern) ? r : NULL;
}

static const struct exception_rule *find_exception(const struct policy *p,
                                                   const struct host *h) {
  const struct exception_rule *e = dommatch_lookup(p->allow, h->name, h->len);
  return e != NULL && host_fits(h, e->pattern) ? e : NULL;
}

void policy_decide(const struct policy *p, const struct facts *facts, int64_t now,
                   struct verdict *out) {
  const struct host *h = facts->host;
  *out = (struct verdict){.action = ACTION_ALLOW,
                          .rule_action = ACTION_ALLOW,
                          .reason = VERDICT_NO_MATCH,
                          .matched = h != NULL ? h->name : NULL};
  const struct host_rule *rule = h != NULL ? find_rule(p, h) : NULL;
  if (rule == NULL)
    return;
  const struct category *c = rule->category;
  out->rule = rule;
  out->reason = VERDICT_VENDOR;
  out->after_cutoff = now >= c->cutoff;
  out->rule_action = out->after_cutoff ? c->after : c->before;
  out->action = out->rule_action;
  /* Only the most specific exception counts: a narrower entry that expired
   * means the admin wanted that name back under the vendor rule. */
  const struct exception_rule *e = find_exception(p, h);
  if (e != NULL && now < e->expires) {
    out->reason = VERDICT_EXCEPTION;
    out->exception = e;
    out->action = ACTION_LOG;
    return;
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
  return p->rules.n;
}

size_t policy_exception_count(const struct policy *p) {
  return p->exceptions.n;
}

const struct host_rule *policy_host_at(const struct policy *p, size_t i) {
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
