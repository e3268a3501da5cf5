/* Client groups and the profiles scoped to them.
 *
 *   client_groups:                  group name -> client networks
 *     lab: [10.9.0.0/16, "fd00:9::/32"]
 *     ksc: [10.1.2.3/32]
 *   client_profiles:                a profile for some groups' clients
 *     - { profile: us-federal, clients: [ksc] }
 *
 * The groups go into the policy snapshot, which resolves a client's address
 * to the set of its groups; exceptions, `vendors:` entries and client
 * profiles name groups in a `clients:` list (load_clients). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/load.h"
#include "filters/err.h"
#include "filters/netmatch.h"

#define COUNT(a)       (sizeof(a) / sizeof((a)[0]))
#define GROUPS_EXPECT  "a mapping of group names to networks like lab: [10.9.0.0/16]"
#define CLIENTS_EXPECT "client group names of client_groups"

struct client_profile_spec {
  const struct ynode *profile, *clients;
};

static const struct directive client_profile_keys[] = {
    {"profile", load_node, offsetof(struct client_profile_spec, profile), 0, 0, true,
     "us-commercial or us-federal"},
    {"clients", load_node, offsetof(struct client_profile_spec, clients), 0, 0, true,
     "a list of " CLIENTS_EXPECT},
};

const struct key_table load_group_key_tables[] = {
    {KEYS_CONFIG, "client_profiles[]", client_profile_keys, COUNT(client_profile_keys)},
    {KEYS_CONFIG, NULL, NULL, 0},
};

int load_record_groups(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                       const char *path, void *target, const struct directive *dir) {
  ld->groups_doc = d;
  ld->groups = value;
  return 0;
}

int load_record_client_profiles(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                                const char *path, void *target, const struct directive *dir) {
  ld->client_profiles_doc = d;
  ld->client_profiles = value;
  return 0;
}

/* The networks of group INDEX, the list N at PATH. */
static int read_group_networks(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                               const char *path, const char *name, size_t index) {
  char sub[LOAD_PATH_MAX];
  if (ynode_kind(n) != YNODE_LIST || ynode_count(n) == 0)
    return load_fail(ld, d, n, path, "expected a list of networks like 10.9.0.0/16 (at least one)");
  for (size_t i = 0; i < ynode_count(n); i++) {
    struct cidr c;
    const struct ynode *item = ynode_item(d, n, i);
    const char *text =
        load_text(ld, d, item, load_path_index(sub, path, i), "a network like 10.9.0.0/16");
    if (text == NULL)
      return EMB_ECONFIG;
    if (cidr_parse(text, ynode_len(item), &c) < 0)
      return load_fail(ld, d, item, sub,
                       "invalid network prefix '%s' (expected a CIDR like 10.9.0.0/16, host "
                       "bits zero)",
                       text);
    int rc = policy_add_group_network(ld->cfg->policy, index, &c);
    if (rc == EMB_EDUPLICATE)
      return load_fail(ld, d, item, sub, "duplicate network '%s' in client group %s", text, name);
    if (rc == EMB_ETOOBIG)
      return load_fail(ld, d, item, sub, "too many client group networks (at most %d in all)",
                       POLICY_MAX_GROUP_NETWORKS);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Declares group pair I of MAP with its networks. */
static int read_group(struct loader *ld, const struct ydoc *d, const struct ynode *map, size_t i) {
  char sub[LOAD_PATH_MAX];
  size_t index;
  const struct ynode *key = ynode_key(d, map, i);
  const char *name = load_text(ld, d, key, "client_groups", "a group name");
  if (name == NULL)
    return EMB_ECONFIG;
  load_path_key(sub, "client_groups", name);
  if (!load_is_name(name))
    return load_fail(ld, d, key, sub, "expected a group name of a-z, 0-9, '-' and '_'");
  int rc = policy_add_group(ld->cfg->policy, name, &index);
  if (rc == EMB_EDUPLICATE)
    return load_fail(ld, d, key, sub, "duplicate client group '%s'", name);
  if (rc == EMB_ETOOBIG)
    return load_fail(ld, d, key, sub, "too many client groups (at most %d)", POLICY_MAX_GROUPS);
  if (rc < 0)
    return rc;
  return read_group_networks(ld, d, ynode_value(d, map, i), sub, name, index);
}

/* The names of the groups declared, for error messages. */
static const char *group_names(const struct policy *p, char *buf, size_t size) {
  policy_format_groups(p, ~UINT64_C(0), buf, size);
  if (buf[0] == '\0')
    snprintf(buf, size, "none: client_groups is empty");
  return buf;
}

int load_clients(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
                 uint64_t *out) {
  char sub[LOAD_PATH_MAX], names[512];
  uint64_t mask = 0;
  if (ynode_kind(n) != YNODE_LIST || ynode_count(n) == 0)
    return load_fail(ld, d, n, path, "expected a list of %s (at least one)", CLIENTS_EXPECT);
  for (size_t i = 0; i < ynode_count(n); i++) {
    const struct ynode *item = ynode_item(d, n, i);
    const char *name = load_text(ld, d, item, load_path_index(sub, path, i), "a client group name");
    if (name == NULL)
      return EMB_ECONFIG;
    int index = policy_group_find(ld->cfg->policy, name);
    if (index < 0)
      return load_fail(ld, d, item, sub, "unknown client group '%s' (client_groups has: %s)", name,
                       group_names(ld->cfg->policy, names, sizeof(names)));
    if (mask & (UINT64_C(1) << index))
      return load_fail(ld, d, item, sub, "client group '%s' named twice", name);
    mask |= UINT64_C(1) << index;
  }
  *out = mask;
  return 0;
}

/* Entry I of `client_profiles`. */
static int read_client_profile(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                               size_t i) {
  struct client_profile_spec spec = {0};
  struct config *cfg = ld->cfg;
  char path[LOAD_PATH_MAX], sub[LOAD_PATH_MAX];
  load_path_index(path, "client_profiles", i);
  if (i == CONFIG_MAX_CLIENT_PROFILES)
    return load_fail(ld, d, item, path, "too many client profiles (at most %d)",
                     CONFIG_MAX_CLIENT_PROFILES);
  int rc = load_map(ld, d, item, path, client_profile_keys, COUNT(client_profile_keys), &spec);
  if (rc < 0)
    return rc;
  const char *name = load_text(ld, d, spec.profile, load_path_key(sub, path, "profile"),
                               client_profile_keys[0].expect);
  if (name == NULL)
    return EMB_ECONFIG;
  if (profile_find(name) == NULL)
    return load_fail(ld, d, spec.profile, sub, "unknown profile '%s' (expected %s)", name,
                     client_profile_keys[0].expect);
  struct config_client_profile *cp = &cfg->client_profiles[cfg->nclient_profiles];
  rc = load_clients(ld, d, spec.clients, load_path_key(sub, path, "clients"), &cp->groups);
  if (rc < 0)
    return rc;
  snprintf(cp->profile, sizeof(cp->profile), "%s", name);
  cfg->nclient_profiles++;
  return 0;
}

int load_groups(struct loader *ld) {
  const struct ydoc *d = ld->groups_doc;
  if (ld->groups != NULL && ynode_kind(ld->groups) != YNODE_NULL) {
    if (ynode_kind(ld->groups) != YNODE_MAP)
      return load_fail(ld, d, ld->groups, "client_groups", "expected %s", GROUPS_EXPECT);
    for (size_t i = 0; i < ynode_count(ld->groups); i++) {
      int rc = read_group(ld, d, ld->groups, i);
      if (rc < 0)
        return rc;
    }
  }
  d = ld->client_profiles_doc;
  if (ld->client_profiles == NULL)
    return 0;
  if (load_list(ld, d, ld->client_profiles, "client_profiles",
                "{ profile: NAME, clients: [GROUP, ...] } entries") < 0)
    return EMB_ECONFIG;
  for (size_t i = 0; i < ynode_count(ld->client_profiles); i++) {
    int rc = read_client_profile(ld, d, ynode_item(d, ld->client_profiles, i), i);
    if (rc < 0)
      return rc;
  }
  return 0;
}
