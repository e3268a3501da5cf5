/* Internals shared by the config loader's modules (config.c, values.c,
 * vendors.c): the loader state, error reporting, and the table-driven walk
 * over YAML mappings. Not part of the public API. */
#ifndef EMBARGO_CONFIG_LOAD_H
#define EMBARGO_CONFIG_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/yaml.h"

/* Longest key path in an error message ("categories.updates.hosts[12]"). */
#define LOAD_PATH_MAX 160
/* Largest config or vendor file read: a vendor list of a million host
 * patterns is about 40 MB. */
#define LOAD_FILE_MAX (64u << 20)

struct loader {
  struct config *cfg; /* being filled; owns cfg->policy and cfg->clients */
  char *err;          /* first error, "file:line:col: key: reason" */
  size_t errsize;
  const char *dir;    /* directory of the document being applied; NULL: built-in */
  /* The last `vendors` and `exceptions` seen: a file's replace the built-in
   * ones. Borrowed from documents that outlive the loader's use of them. */
  const struct ydoc *vendors_doc;
  const struct ynode *vendors;
  const char *vendors_dir;
  const struct ydoc *exceptions_doc;
  const struct ynode *exceptions;
  /* The last `client_groups` and `client_profiles` seen, read with the
   * policy before the lists and exceptions that name their groups. */
  const struct ydoc *groups_doc;
  const struct ynode *groups;
  const struct ydoc *client_profiles_doc;
  const struct ynode *client_profiles;
  /* The client groups the vendor list being read is in force for; 0: every
   * client. */
  uint64_t doc_groups;
  /* Where `deny_with: page` was first set ("file:line:col: key"), checked
   * against certs.ca_dir once everything is read; "" when nowhere. */
  char page_where[LOAD_PATH_MAX + 600];
  /* Where a listener first asks for the PROXY protocol ("file:line:col:
   * key"), checked against proxy_protocol_from once everything is read;
   * "" when none does. */
  char proxy_protocol_where[LOAD_PATH_MAX + 600];
  /* The signed bundle `builtin:` lists come from (NULL: the compiled-in
   * ones), owned when read from the cache (own_bundle), and the bundle of
   * the vendor list being read (NULL: not from a bundle). */
  const struct bundle *bundle;
  struct bundle *own_bundle;
  const struct bundle *doc_bundle;
};

struct directive;
/* Applies VALUE (at key path PATH) to TARGET as DIR describes. Returns 0 or
 * a negative code after writing the error (load_fail). */
typedef int (*directive_fn)(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                            const char *path, void *target, const struct directive *dir);

/* One key of a mapping. */
struct directive {
  const char *key;
  directive_fn apply;
  size_t offset;      /* where in TARGET the value goes */
  uint64_t min, max;  /* bounds for numbers and durations */
  bool required;
  const char *expect; /* what a valid value looks like: "a duration like 10s" */
};

/* Which file a directive table reads: the configuration, or a vendor list. */
enum key_file { KEYS_CONFIG, KEYS_VENDOR_LIST };

/* A directive table and the key path it applies under, for `embargo config
 * keys`: "" for the top of the file, "timeouts" for a mapping, "listen[]"
 * for the mapping form of a list's items, an upper-case word where a name
 * of the file's own stands ("categories.NAME"). Every module that has
 * tables lists them all in one array ending with a NULL table. */
struct key_table {
  enum key_file file;
  const char *path;
  const struct directive *table;
  size_t n;
};

extern const struct key_table load_config_key_tables[]; /* config.c */
extern const struct key_table load_admin_key_tables[];  /* admin.c */
extern const struct key_table load_lists_key_tables[];  /* lists.c */
extern const struct key_table load_vendor_key_tables[]; /* vendors.c */
extern const struct key_table load_preset_key_tables[]; /* presets.c */
extern const struct key_table load_entry_key_tables[];  /* entries.c */
extern const struct key_table load_group_key_tables[];  /* groups.c */
extern const struct key_table load_upstream_key_tables[]; /* upstream.c */

/* Whether S is a name of the configuration's own (vendor ids, category
 * and client group names): lowercase letters, digits, '-' and '_'. */
bool load_is_name(const char *s);

/* BYTES (N of them) as lowercase hex into OUT (2N + 1 bytes). */
void load_hex(const unsigned char *bytes, size_t n, char *out);

/* Reads an optional action (allow, log or deny) at N into *OUT; N NULL
 * leaves it. 0, or EMB_ECONFIG with the error at N. */
int load_action_at(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                   const char *path, enum action *out);

/* Writes "file:line:col: PATH: reason" (N's position) into ld->err and
 * returns EMB_ECONFIG. */
int load_fail(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "PATH.KEY" (or "KEY" at the top) and "PATH[I]" into BUF. */
const char *load_path_key(char *buf, const char *path, const char *key);
const char *load_path_index(char *buf, const char *path, size_t i);

/* Walks MAP: each key must be a name in TABLE (N entries, at most 64), given
 * once; each value goes to its directive's apply with TARGET. Then reports
 * the first required key that was missing. */
int load_map(struct loader *ld, const struct ydoc *d, const struct ynode *map,
             const char *path, const struct directive *table, size_t n, void *target);

/* Returns N's text if it is a non-empty scalar; otherwise writes
 * "PATH: expected EXPECT" and returns NULL. */
const char *load_text(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                      const char *path, const char *expect);

/* Requires N to be a list (or null, meaning empty); writes the error. */
int load_list(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
              const char *expect);

/* Directive handlers: a uint64_t duration in milliseconds, a size_t within
 * [min, max], a bool, a string copied into a char[max] buffer, an enum
 * action (allow, log, deny), or just the node (const struct ynode *) for the
 * caller to read later. */
int load_duration(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                  const char *path, void *target, const struct directive *dir);
int load_size(struct loader *ld, const struct ydoc *d, const struct ynode *value,
              const char *path, void *target, const struct directive *dir);
int load_bool(struct loader *ld, const struct ydoc *d, const struct ynode *value,
              const char *path, void *target, const struct directive *dir);
int load_string(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                const char *path, void *target, const struct directive *dir);
int load_action(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                const char *path, void *target, const struct directive *dir);
/* An enum deny_with (alert, page); a page records ld->page_where. */
int load_deny_with(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                   const char *path, void *target, const struct directive *dir);
int load_node(struct loader *ld, const struct ydoc *d, const struct ynode *value,
              const char *path, void *target, const struct directive *dir);

/* Parses a decimal integer in [MIN, MAX] from the whole of TEXT. 0 or -EINVAL. */
int load_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Reads PATH whole into *data (caller frees; NUL-terminated). 0 or -errno
 * (-EFBIG past LOAD_FILE_MAX). */
int load_read_file(const char *path, char **data, size_t *len);

/* Whether to load the built-in list NAME, and for which client groups
 * (*GROUPS, 0: every client). */
typedef bool (*load_want_fn)(const struct loader *ld, const char *name, uint64_t *groups);

/* Loads the built-in vendor lists in the order built in (compiled in, then
 * those the signed bundle adds): every one for every client when WANT is
 * NULL, else those WANT takes (vendors.c). */
int load_builtin_lists(struct loader *ld, load_want_fn want);

/* Loads the list a `vendors:` entry names: the built-in list named by N
 * (load_builtin_entry), or the file N names, relative to the directory of
 * the document with `vendors:` (load_file_entry). *OUT receives its vendor
 * (vendors.c). */
int load_builtin_entry(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                       const char *path, struct vendor **out);
int load_file_entry(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                    const char *path, struct vendor **out);

/* PATH, relative to DIR (may be NULL) unless absolute; caller frees. NULL
 * on ENOMEM (vendors.c). */
char *load_resolve_path(const char *dir, const char *path);

/* The `vendors:` entries, or without any the profiles' lists (entries.c). */
int load_vendors(struct loader *ld);

/* The `exceptions` entries into cfg->policy (vendors.c). */
int load_exceptions(struct loader *ld);

/* Builds cfg->policy: its monitor mode and profile, the client groups,
 * the vendor lists (ld->vendors) and the exceptions, then its version
 * (config.c). */
int load_policy(struct loader *ld);

/* Records a source file of the snapshot: NAME and the SHA-256 of DATA
 * (sources.c). Returns 0 or a negative code after writing the error. */
int load_note_source(struct loader *ld, const char *name, const char *data, size_t len);

/* Sets the snapshot's version from its sources' digests (sources.c). */
int load_set_version(struct loader *ld);

/* A regime preset (presets.c): the built-in lists it loads when the config
 * names none (LISTS, NULL-terminated; NULL: every built-in list) and what
 * it is for. */
struct profile_def {
  const char *name;
  const char *const *lists;
  const char *summary;
};

/* The profile in force when the config names none. */
const char *profile_default(void);

/* The profile called NAME, or NULL. */
const struct profile_def *profile_find(const char *name);

/* The top-level `profile` key: checks the name, sets cfg->profile. */
int load_profile(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                 const char *path, void *target, const struct directive *dir);

/* Reads a category's `presets:` mapping (PRESETS may be NULL): every
 * profile named must exist and every entry must be valid; the entry of the
 * profile in force (cfg->profile) sets C's actions, marked as a preset, and
 * the entry of client profile K (cfg->client_profiles) sets SCOPED[K]'s,
 * which the caller initialised with C's actions as the list sets them. */
int load_presets(struct loader *ld, const struct ydoc *d, const struct ynode *presets,
                 const char *path, struct category *c, struct category_scope *scoped);

/* Applies a `vendors:` entry's `override:` mapping (may be NULL) to V's
 * categories: an unknown category is an error at its key. With GROUPS 0
 * the override is every client's: it sets the categories' own actions and
 * those of their profiles' scopes. Otherwise it adds a scope for GROUPS
 * (after one for each profile scope, for a client in both, the profile's
 * actions beneath the override's), ahead of the profiles' scopes: apply
 * every client's overrides first. */
int load_override(struct loader *ld, const struct ydoc *d, const struct ynode *override,
                  const char *path, struct vendor *v, uint64_t groups);

/* Records the `client_groups` and `client_profiles` keys (groups.c). */
int load_record_groups(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                       const char *path, void *target, const struct directive *dir);
int load_record_client_profiles(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                                const char *path, void *target, const struct directive *dir);

/* Reads the recorded `client_groups` into the policy, then
 * `client_profiles` into cfg (groups.c). */
int load_groups(struct loader *ld);

/* Reads a `clients:` list of client group names at N into *OUT (a mask):
 * each name must be a group of `client_groups`, given once, and the list
 * not empty (groups.c). */
int load_clients(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
                 uint64_t *out);

/* Sets C's own actions from S's (category_actions the other way). */
void load_set_own_actions(struct category *c, const struct category_scope *s);

/* The `admin` mapping (admin.c): listen, token_file, names. */
int load_admin(struct loader *ld, const struct ydoc *d, const struct ynode *value,
               const char *path, void *target, const struct directive *dir);

/* The `lists` mapping (lists.c): url, pubkey, interval, cache_dir, ca_file, proxy. */
int load_lists(struct loader *ld, const struct ydoc *d, const struct ynode *value,
               const char *path, void *target, const struct directive *dir);

/* With `lists` set: FETCHED (borrowed), or else the cached bundle, becomes
 * the bundle `builtin:` lists are read from (lists.c). */
int load_lists_bundle(struct loader *ld, const struct bundle *fetched);

struct bundle_file;
/* Reads F, a file of ld->bundle, as a vendor list (vendors.c); *OUT (may be
 * NULL) receives its vendor. */
int load_bundle_list(struct loader *ld, const struct bundle_file *f, struct vendor **out);

/* Reads the LEN bytes at DATA, named LABEL, as a vendor list (vendors.c);
 * *OUT (may be NULL) receives its vendor. */
int load_vendor_data(struct loader *ld, const char *label, const char *data, size_t len,
                     struct vendor **out);

/* The `upstream_proxy` mapping (upstream.c): address, except,
 * proxy_authorization_file. */
int load_upstream_proxy(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir);

/* The `readiness` mapping (admin.c): stale_lists. */
int load_readiness(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                   const char *path, void *target, const struct directive *dir);

/* Checks the admin settings against the rest once every document is
 * applied: not on a proxy listener's address, a token beyond loopback. */
int load_check_admin(struct loader *ld);

#endif
