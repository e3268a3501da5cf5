/* The `vendors:` entries of the config, or, without any, the lists of the
 * profiles in force.
 *
 * An entry names a list and may carry an override and a `clients:` list:
 *   vendors:
 *     - builtin: kaspersky                       for every client
 *     - builtin: kaspersky                       the same list again: its
 *       clients: [lab]                           override is lab's alone
 *       override: { updates: { after: log } }
 *     - { builtin: hikvision, clients: [ksc] }   in force for ksc alone
 * A list is loaded once: in force for every client if an entry without
 * `clients:` names it, else for the groups its entries name. A list is
 * named at most once without `clients:`. Overrides apply once every list is
 * loaded, every client's first, then the groups' in the order written: a
 * group's override lies over every client's, wherever each is written.
 *
 * Without `vendors:`, the lists of `profile:` load for every client and
 * those only a client profile's profile loads, for its groups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/load.h"
#include "filters/err.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct vendor_ref {
  const struct ynode *builtin, *file, *override, *clients;
};

#define NODE(key, field, expect)                                                                   \
  { key, load_node, offsetof(struct vendor_ref, field), 0, 0, false, expect }

static const struct directive ref_keys[] = {
    NODE("builtin", builtin, "the name of a built-in list like kaspersky"),
    NODE("file", file, "a path to a vendor list"),
    NODE("override", override, "a mapping of category names to { before: ACTION, after: ACTION }"),
    NODE("clients", clients, "a list of client group names of client_groups"),
};

const struct key_table load_entry_key_tables[] = {
    {KEYS_CONFIG, "vendors[]", ref_keys, COUNT(ref_keys)},
    {KEYS_CONFIG, NULL, NULL, 0},
};

/* One entry of `vendors:`, read. */
struct entry {
  struct vendor_ref ref;
  char path[LOAD_PATH_MAX]; /* "vendors[I]" */
  uint64_t groups;          /* its `clients:`; 0: every client */
  char *key;                /* "builtin:NAME" or the file's full path (owned) */
  size_t first;             /* the entry that loads the list (itself, or an earlier one) */
  bool everyone;            /* first entry: an entry without `clients:` names the list */
  uint64_t all_groups;      /* first entry: the groups of the entries with `clients:` */
  struct vendor *v;
};

/* Reads entry ITEM into E: the list it names, as a key, and its groups. */
static int read_entry(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                      struct entry *e) {
  char sub[LOAD_PATH_MAX];
  int rc = load_map(ld, d, item, e->path, ref_keys, COUNT(ref_keys), &e->ref);
  if (rc < 0)
    return rc;
  if ((e->ref.builtin == NULL) == (e->ref.file == NULL))
    return load_fail(ld, d, item, e->path, "expected one of `builtin: NAME` or `file: PATH`");
  if (e->ref.clients != NULL &&
      load_clients(ld, d, e->ref.clients, load_path_key(sub, e->path, "clients"), &e->groups) < 0)
    return EMB_ECONFIG;
  const struct ynode *n = e->ref.builtin != NULL ? e->ref.builtin : e->ref.file;
  const char *text =
      load_text(ld, d, n, load_path_key(sub, e->path, e->ref.builtin ? "builtin" : "file"),
                e->ref.builtin ? ref_keys[0].expect : ref_keys[1].expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (e->ref.builtin != NULL) {
    size_t len = strlen(text) + sizeof("builtin:");
    if ((e->key = malloc(len)) != NULL)
      snprintf(e->key, len, "builtin:%s", text);
  } else {
    e->key = load_resolve_path(ld->vendors_dir, text);
  }
  return e->key != NULL ? 0 : -ENOMEM;
}

/* Finds the entry before I that loads the same list as entry I, if I may
 * share it: a list is named once for every client, then only with
 * `clients:` (a second entry without is loaded again, and refused as a
 * duplicate vendor). */
static void join_entry(struct entry *entries, size_t i) {
  struct entry *e = &entries[i];
  e->first = i;
  for (size_t j = 0; j < i; j++) {
    struct entry *f = &entries[j];
    if (f->first != j || strcmp(f->key, e->key) != 0)
      continue;
    if (e->groups == 0 && f->everyone)
      continue;
    e->first = j;
    break;
  }
  struct entry *f = &entries[e->first];
  f->everyone |= e->groups == 0;
  f->all_groups |= e->groups;
}

/* Loads the list of first entry E, in force for its entries' groups. */
static int load_entry_list(struct loader *ld, const struct ydoc *d, struct entry *e) {
  char sub[LOAD_PATH_MAX];
  ld->doc_groups = e->everyone ? 0 : e->all_groups;
  int rc =
      e->ref.builtin != NULL
          ? load_builtin_entry(ld, d, e->ref.builtin, load_path_key(sub, e->path, "builtin"), &e->v)
          : load_file_entry(ld, d, e->ref.file, load_path_key(sub, e->path, "file"), &e->v);
  ld->doc_groups = 0;
  return rc;
}

/* Applies the overrides of the entries for every client (SCOPED false) or
 * of those with `clients:` (SCOPED true), in order. */
static int apply_overrides(struct loader *ld, const struct ydoc *d, struct entry *entries, size_t n,
                           bool scoped) {
  char sub[LOAD_PATH_MAX];
  for (size_t i = 0; i < n; i++) {
    struct entry *e = &entries[i];
    if ((e->groups != 0) != scoped)
      continue;
    int rc = load_override(ld, d, e->ref.override, load_path_key(sub, e->path, "override"),
                           entries[e->first].v, e->groups);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int load_entries(struct loader *ld, const struct ydoc *d, const struct ynode *list) {
  size_t n = ynode_count(list);
  struct entry *entries = calloc(n ? n : 1, sizeof(*entries));
  int rc = entries != NULL ? 0 : -ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    load_path_index(entries[i].path, "vendors", i);
    rc = read_entry(ld, d, ynode_item(d, list, i), &entries[i]);
    if (rc == 0)
      join_entry(entries, i);
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (entries[i].first == i)
      rc = load_entry_list(ld, d, &entries[i]);
  }
  if (rc == 0)
    rc = apply_overrides(ld, d, entries, n, false);
  if (rc == 0)
    rc = apply_overrides(ld, d, entries, n, true);
  for (size_t i = 0; entries != NULL && i < n; i++)
    free(entries[i].key);
  free(entries);
  return rc;
}

/* Whether PROF (may be NULL) loads the built-in list NAME. */
static bool profile_has(const struct profile_def *prof, const char *name) {
  if (prof == NULL)
    return false;
  if (prof->lists == NULL)
    return true; /* every built-in list */
  for (const char *const *l = prof->lists; *l != NULL; l++) {
    if (strcmp(*l, name) == 0)
      return true;
  }
  return false;
}

/* A list of `profile:` is every client's; one only client profiles load
 * is their groups'. */
static bool want_profile_list(const struct loader *ld, const char *name, uint64_t *groups) {
  const struct config *cfg = ld->cfg;
  *groups = 0;
  if (profile_has(profile_find(cfg->profile), name))
    return true;
  for (size_t k = 0; k < cfg->nclient_profiles; k++) {
    if (profile_has(profile_find(cfg->client_profiles[k].profile), name))
      *groups |= cfg->client_profiles[k].groups;
  }
  return *groups != 0;
}

int load_vendors(struct loader *ld) {
  const struct ydoc *d = ld->vendors_doc;
  if (ld->vendors == NULL)
    return load_builtin_lists(ld, want_profile_list);
  if (load_list(ld, d, ld->vendors, "vendors", "`builtin: NAME` or `file: PATH` entries") < 0)
    return EMB_ECONFIG;
  return load_entries(ld, d, ld->vendors);
}
