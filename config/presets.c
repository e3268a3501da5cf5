/* Regime presets and site overrides of category actions.
 *
 * A profile (`profile:` in the config) names a legal regime: which built-in
 * lists load when the config names none, and which of each list's
 * `presets:` entries apply. A list's category says, per profile, what that
 * regime asks of its `before` and `after` actions and on what basis; the
 * site's `override:` under a `vendors:` entry has the last word. Each action
 * remembers who set it, so the decision log can say so. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/load.h"
#include "filters/err.h"

#define COUNT(a)       (sizeof(a) / sizeof((a)[0]))
#define PROFILE_EXPECT "us-commercial or us-federal"

static const char *const commercial_lists[] = {"kaspersky", NULL};

static const struct profile_def profiles[] = {
    {"us-commercial", commercial_lists,
     "Kaspersky enforced (its updates are banned from the cutoff on); nothing else loaded"},
    {"us-federal", NULL,
     "every built-in list; what NDAA FY2019 §889, FAR 52.204-23/-25/-27 and FY2026 NDAA §1532 "
     "ask of federal networks and contractors: covered equipment's cloud, P2P and telemetry, "
     "TikTok and DeepSeek denied, firmware logged, Kaspersky as in us-commercial"},
};

const char *profile_default(void) {
  return profiles[0].name;
}

const struct profile_def *profile_find(const char *name) {
  for (size_t i = 0; i < COUNT(profiles); i++) {
    if (strcmp(profiles[i].name, name) == 0)
      return &profiles[i];
  }
  return NULL;
}

size_t config_profile_count(void) {
  return COUNT(profiles);
}

const char *config_profile_name(size_t i) {
  return i < COUNT(profiles) ? profiles[i].name : NULL;
}

const char *config_profile_summary(size_t i) {
  return i < COUNT(profiles) ? profiles[i].summary : NULL;
}

int load_profile(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                 const char *path, void *target, const struct directive *dir) {
  const char *name = load_text(ld, d, value, path, dir->expect);
  if (name == NULL)
    return EMB_ECONFIG;
  if (profile_find(name) == NULL)
    return load_fail(ld, d, value, path, "unknown profile '%s' (expected %s)", name,
                     PROFILE_EXPECT);
  snprintf(ld->cfg->profile, sizeof(ld->cfg->profile), "%s", name);
  return 0;
}

/* ---- actions ----------------------------------------------------------------- */

/* One preset or override entry: actions, and for a preset its basis. */
struct action_spec {
  const struct ynode *before, *after, *basis;
};

#define NODE(key, field, expect)                                                                   \
  { key, load_node, offsetof(struct action_spec, field), 0, 0, false, expect }

static const struct directive preset_keys[] = {
    NODE("before", before, "allow, log or deny"),
    NODE("after", after, "allow, log or deny"),
    NODE("basis", basis, "the instrument that asks for these actions"),
};

static const struct directive override_keys[] = {
    NODE("before", before, "allow, log or deny"),
    NODE("after", after, "allow, log or deny"),
};

const struct key_table load_preset_key_tables[] = {
    {KEYS_CONFIG, "vendors[].override.CATEGORY", override_keys, COUNT(override_keys)},
    {KEYS_VENDOR_LIST, "categories.NAME.presets.PROFILE", preset_keys, COUNT(preset_keys)},
    {KEYS_CONFIG, NULL, NULL, 0},
};

/* Reads an optional action at N into *OUT and marks it set by FROM. */
static int read_action(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                       const char *path, enum action *out, enum action_from *from,
                       enum action_from who) {
  int rc = load_action_at(ld, d, n, path, out);
  if (rc == 0 && n != NULL)
    *from = who;
  return rc;
}

/* Applies SPEC, read from MAP at PATH, to A as set by WHO. */
static int apply_actions(struct loader *ld, const struct ydoc *d, const struct ynode *map,
                         const struct action_spec *spec, const char *path, struct category_scope *a,
                         enum action_from who) {
  char sub[LOAD_PATH_MAX];
  if (spec->before == NULL && spec->after == NULL)
    return load_fail(ld, d, map, path, "sets no action (expected before, after or both)");
  if (spec->basis != NULL &&
      load_text(ld, d, spec->basis, load_path_key(sub, path, "basis"), "a text") == NULL)
    return EMB_ECONFIG;
  int rc = read_action(ld, d, spec->before, load_path_key(sub, path, "before"), &a->before,
                       &a->before_from, who);
  if (rc == 0)
    rc = read_action(ld, d, spec->after, load_path_key(sub, path, "after"), &a->after,
                     &a->after_from, who);
  return rc;
}

void load_set_own_actions(struct category *c, const struct category_scope *s) {
  c->before = s->before;
  c->after = s->after;
  c->before_from = s->before_from;
  c->after_from = s->after_from;
  c->preset = s->preset;
  c->basis = s->basis;
  c->override_where = s->override_where;
}

/* Refuses key I of MAP if an earlier key has the same text. */
static int unique_key(struct loader *ld, const struct ydoc *d, const struct ynode *map, size_t i,
                      const char *path) {
  const char *name = ynode_text(ynode_key(d, map, i));
  for (size_t k = 0; k < i; k++) {
    const char *other = ynode_text(ynode_key(d, map, k));
    if (other != NULL && name != NULL && strcmp(other, name) == 0)
      return load_fail(ld, d, ynode_key(d, map, i), path, "duplicate key");
  }
  return 0;
}

/* Gives SCRATCH, the preset NAME's actions, to C if NAME is the profile in
 * force and to each client profile's scope that names it. */
static void use_preset(const struct config *cfg, const char *name,
                       const struct category_scope *scratch, struct category *c,
                       struct category_scope *scoped) {
  if (strcmp(name, cfg->profile) == 0)
    load_set_own_actions(c, scratch);
  for (size_t k = 0; k < cfg->nclient_profiles; k++) {
    if (strcmp(name, cfg->client_profiles[k].profile) != 0)
      continue;
    struct category_scope s = *scratch;
    s.groups = scoped[k].groups;
    s.by = scoped[k].by;
    scoped[k] = s;
  }
}

int load_presets(struct loader *ld, const struct ydoc *d, const struct ynode *presets,
                 const char *path, struct category *c, struct category_scope *scoped) {
  char sub[LOAD_PATH_MAX];
  const struct category_scope list = category_actions(c);
  if (presets == NULL)
    return 0;
  if (ynode_kind(presets) != YNODE_MAP)
    return load_fail(ld, d, presets, path, "expected a mapping of profile names");
  for (size_t i = 0; i < ynode_count(presets); i++) {
    struct action_spec spec = {0};
    struct category_scope scratch = list;
    const struct ynode *key = ynode_key(d, presets, i), *val = ynode_value(d, presets, i);
    const char *name = load_text(ld, d, key, path, "a profile name");
    if (name == NULL)
      return EMB_ECONFIG;
    load_path_key(sub, path, name);
    if (profile_find(name) == NULL)
      return load_fail(ld, d, key, sub, "unknown profile '%s' (expected %s)", name, PROFILE_EXPECT);
    int rc = unique_key(ld, d, presets, i, sub);
    if (rc == 0)
      rc = load_map(ld, d, val, sub, preset_keys, COUNT(preset_keys), &spec);
    if (rc == 0)
      rc = apply_actions(ld, d, val, &spec, sub, &scratch, ACTION_FROM_PRESET);
    if (rc < 0)
      return rc;
    scratch.preset = policy_strdup(ld->cfg->policy, name);
    scratch.basis =
        spec.basis != NULL ? policy_strdup(ld->cfg->policy, ynode_text(spec.basis)) : NULL;
    if (scratch.preset == NULL || (spec.basis != NULL && scratch.basis == NULL))
      return -ENOMEM;
    use_preset(ld->cfg, name, &scratch, c, scoped); /* checked, and used if in force */
  }
  return 0;
}

/* Lists V's category names into BUF for error messages. */
static const char *category_names(const struct vendor *v, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < v->ncategories && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", v->categories[i].name);
  return buf;
}

/* Applies SPEC (from VAL at SUB, set at WHERE) to A, as an override. */
static int override_actions(struct loader *ld, const struct ydoc *d, const struct ynode *val,
                            const struct action_spec *spec, const char *sub, struct origin where,
                            struct category_scope *a) {
  int rc = apply_actions(ld, d, val, spec, sub, a, ACTION_FROM_OVERRIDE);
  a->override_where = where;
  return rc;
}

/* An override of every client's: C's own actions and every scope's. */
static int override_all(struct loader *ld, const struct ydoc *d, const struct ynode *val,
                        const struct action_spec *spec, const char *sub, struct origin where,
                        struct category *c) {
  struct category_scope own = category_actions(c);
  int rc = override_actions(ld, d, val, spec, sub, where, &own);
  load_set_own_actions(c, &own);
  for (size_t k = 0; rc == 0 && k < c->nscopes; k++)
    rc = override_actions(ld, d, val, spec, sub, where, &c->scopes[k]);
  return rc;
}

/* An override for GROUPS: new scopes after the overrides' before it and
 * ahead of the profiles', one over each profile scope (for a client in
 * both), then one over C's own actions. */
static int override_groups(struct loader *ld, const struct ydoc *d, const struct ynode *val,
                           const struct action_spec *spec, const char *sub, struct origin where,
                           struct category *c, uint64_t groups) {
  size_t at = 0, nprofiles;
  while (at < c->nscopes && c->scopes[at].by == SCOPE_BY_OVERRIDE)
    at++;
  nprofiles = c->nscopes - at;
  for (size_t k = 0; k < nprofiles; k++) {
    /* Each insertion moves the profile scopes one place on. */
    struct category_scope s = c->scopes[c->nscopes - nprofiles + k];
    s.also = s.groups; /* a client of the override's groups and of the profile's */
    s.groups = groups;
    s.by = SCOPE_BY_OVERRIDE;
    int rc = override_actions(ld, d, val, spec, sub, where, &s);
    if (rc == 0)
      rc = policy_add_scope(ld->cfg->policy, c, at++, &s);
    if (rc < 0)
      return rc;
  }
  struct category_scope s = category_actions(c);
  s.groups = groups;
  s.by = SCOPE_BY_OVERRIDE;
  int rc = override_actions(ld, d, val, spec, sub, where, &s);
  return rc == 0 ? policy_add_scope(ld->cfg->policy, c, at, &s) : rc;
}

int load_override(struct loader *ld, const struct ydoc *d, const struct ynode *override,
                  const char *path, struct vendor *v, uint64_t groups) {
  char sub[LOAD_PATH_MAX], names[256];
  if (override == NULL)
    return 0;
  if (ynode_kind(override) != YNODE_MAP)
    return load_fail(ld, d, override, path, "expected a mapping of category names");
  for (size_t i = 0; i < ynode_count(override); i++) {
    struct action_spec spec = {0};
    const struct ynode *key = ynode_key(d, override, i), *val = ynode_value(d, override, i);
    const char *name = load_text(ld, d, key, path, "a category name");
    if (name == NULL)
      return EMB_ECONFIG;
    load_path_key(sub, path, name);
    struct category *c = policy_edit_category(v, name);
    if (c == NULL)
      return load_fail(ld, d, key, sub, "no category '%s' in vendor list %s (it has: %s)", name,
                       v->id, category_names(v, names, sizeof(names)));
    int rc = unique_key(ld, d, override, i, sub);
    if (rc == 0)
      rc = load_map(ld, d, val, sub, override_keys, COUNT(override_keys), &spec);
    if (rc < 0)
      return rc;
    struct origin where = ynode_origin(d, val);
    if ((where.file = policy_strdup(ld->cfg->policy, where.file)) == NULL)
      return -ENOMEM;
    rc = groups == 0 ? override_all(ld, d, val, &spec, sub, where, c)
                     : override_groups(ld, d, val, &spec, sub, where, c, groups);
    if (rc < 0)
      return rc;
  }
  return 0;
}
