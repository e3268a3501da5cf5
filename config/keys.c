/* The key paths of the directive tables every loader module registers. */
#include "config/keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "config/load.h"

#define KEYS_DEPTH_MAX 8

static const struct key_table *const modules[] = {
    load_config_key_tables, load_admin_key_tables,  load_lists_key_tables,
    load_vendor_key_tables, load_preset_key_tables, load_entry_key_tables,
    load_group_key_tables,  load_upstream_key_tables,
};

/* Whether a table at PATH holds the keys under the key FULL: FULL's own
 * mapping, its list items' mapping ("FULL[]"), or the mapping under a name
 * the file chooses ("FULL.NAME"). */
static bool is_under(const char *path, const char *full) {
  size_t n = strlen(full);
  if (strncmp(path, full, n) != 0)
    return false;
  path += n;
  if (*path == '\0' || strcmp(path, "[]") == 0)
    return true;
  if (*path++ != '.' || *path == '\0')
    return false;
  for (; *path != '\0'; path++)
    if (!isupper((unsigned char)*path))
      return false;
  return true;
}

static void print_under(FILE *out, enum key_file file, const char *path, int depth);

/* The keys of table T, each followed by the tables under it. */
static void print_table(FILE *out, const struct key_table *t, int depth) {
  char full[LOAD_PATH_MAX];
  for (size_t i = 0; i < t->n; i++) {
    snprintf(full, sizeof(full), "%s%s%s", t->path, t->path[0] ? "." : "", t->table[i].key);
    fprintf(out, "%s\n", full);
    if (depth < KEYS_DEPTH_MAX)
      print_under(out, t->file, full, depth + 1);
  }
}

static void print_under(FILE *out, enum key_file file, const char *full, int depth) {
  for (size_t m = 0; m < sizeof(modules) / sizeof(modules[0]); m++)
    for (const struct key_table *t = modules[m]; t->table != NULL; t++)
      if (t->file == file && t->path[0] != '\0' && is_under(t->path, full))
        print_table(out, t, depth);
}

int config_keys_print(const char *which, FILE *out) {
  enum key_file file;
  if (which == NULL || strcmp(which, "config") == 0)
    file = KEYS_CONFIG;
  else if (strcmp(which, "vendor-list") == 0)
    file = KEYS_VENDOR_LIST;
  else
    return -EINVAL;
  for (size_t m = 0; m < sizeof(modules) / sizeof(modules[0]); m++)
    for (const struct key_table *t = modules[m]; t->table != NULL; t++)
      if (t->file == file && t->path[0] == '\0')
        print_table(out, t, 0);
  return 0;
}
