/* The policy engine: an immutable snapshot of vendor lists, exceptions and
 * global switches, and the pure function that turns facts about a
 * destination plus the time into a verdict with its reason. No I/O, no clock
 * reads: the caller passes NOW. */
#ifndef EMBARGO_FILTERS_POLICY_H
#define EMBARGO_FILTERS_POLICY_H

#include "filters/clientgroups.h"
#include "filters/netmatch.h"
#include "filters/pathmatch.h"
#include "filters/policy-t.h"

struct policy;

/* Building a snapshot (used by config/). All strings are copied into the
 * snapshot. Each add function returns 0 or a negative code. */
struct policy *policy_new(void);
/* Interns S (copied); the returned pointer lives as long as the snapshot. */
const char *policy_strdup(struct policy *p, const char *s);
/* Returns the new vendor (owned by P) or NULL on ENOMEM / duplicate id
 * (*err set to EMB_EDUPLICATE or -ENOMEM). */
struct vendor *policy_add_vendor(struct policy *p, const char *id, const char *name,
                                 const char *reference, struct origin where, int *err);
/* Adds a category to V. Returns it or NULL (*err as above). The returned
 * pointer stays valid until the next category is added to V: add a
 * category's hosts before its next sibling (rules already added follow the
 * move). */
struct category *policy_add_category(struct policy *p, struct vendor *v, const char *name,
                                     int64_t cutoff, enum action before, enum action after,
                                     struct origin where, int *err);
/* Looks a vendor's category up by name; NULL if absent. */
const struct category *policy_find_category(const struct vendor *v, const char *name);
const struct vendor *policy_find_vendor(const struct policy *p, const char *id);
/* Adds a host pattern for V/C. EMB_EBADPATTERN, EMB_EDUPLICATE (*dup_where,
 * if not NULL, receives the earlier declaration), -ENOMEM. */
int policy_add_host(struct policy *p, const struct vendor *v, const struct category *c,
                    const char *pattern, struct origin where, struct origin *dup_where);
/* Adds a network rule (RULE_NETWORK) for V/C; its pattern is NET in
 * canonical "prefix/len" text. Same returns as policy_add_host. */
int policy_add_network(struct policy *p, const struct vendor *v, const struct category *c,
                       const struct cidr *net, enum confidence confidence, struct origin where,
                       struct origin *dup_where);
/* Adds a JA4 fingerprint rule (RULE_JA4) for V/C. JA4 (lowercase, checked by
 * the caller) is matched exactly. A JA4 names a TLS stack, which many
 * programs share, so most lists want CONFIDENCE_HINT. Same returns. */
int policy_add_ja4(struct policy *p, const struct vendor *v, const struct category *c,
                   const char *ja4, enum confidence confidence, struct origin where,
                   struct origin *dup_where);
/* Adds a request-path pattern rule (RULE_PATH) for V/C (see pathmatch.h).
 * EMB_EBADPATTERN, EMB_EDUPLICATE (*dup_where as above), -ENOMEM. */
int policy_add_path(struct policy *p, const struct vendor *v, const struct category *c,
                    const char *pattern, struct origin where, struct origin *dup_where);
/* Records a name V leaves out on purpose, with REASON (both copied).
 * Returns 0 or -ENOMEM. */
int policy_add_left_out(struct policy *p, struct vendor *v, const char *name,
                        const char *reason, struct origin where);
/* V's category NAME, to be edited while the snapshot is built (presets and
 * overrides); NULL if absent. */
struct category *policy_edit_category(struct vendor *v, const char *name);
int policy_add_exception(struct policy *p, const char *pattern, int64_t expires,
                         const char *reason, struct origin where, struct origin *dup_where);
/* An exception that opens only for the clients of GROUPS (0: every client,
 * as policy_add_exception). A pattern may be given once per set of groups:
 * EMB_EDUPLICATE (*dup_where as above) within the same set. */
int policy_add_exception_for(struct policy *p, const char *pattern, int64_t expires,
                             const char *reason, uint64_t groups, struct origin where,
                             struct origin *dup_where);

/* Client groups. policy_add_group declares group NAME (copied) and gives
 * its index in *INDEX: EMB_EDUPLICATE for a name given before, EMB_ETOOBIG
 * past POLICY_MAX_GROUPS, -ENOMEM. policy_add_group_network adds NET to
 * group INDEX: 0, EMB_EDUPLICATE if the group has it already, EMB_ETOOBIG
 * past POLICY_MAX_GROUP_NETWORKS networks in all, -ENOMEM. Networks of
 * different groups may overlap and nest: a client is in every group one of
 * whose networks holds its address. */
#define POLICY_MAX_GROUP_NETWORKS CLIENTGROUPS_MAX_NETWORKS
int policy_add_group(struct policy *p, const char *name, size_t *index);
int policy_add_group_network(struct policy *p, size_t index, const struct cidr *net);
size_t policy_group_count(const struct policy *p);
/* Group I's name, or NULL past the end. */
const char *policy_group_name(const struct policy *p, size_t i);
/* The index of group NAME, or -1. */
int policy_group_find(const struct policy *p, const char *name);
/* Group I's networks, comma-separated, into BUF (truncated to SIZE). */
void policy_group_networks(const struct policy *p, size_t i, char *buf, size_t size);
/* The groups of a client at ADDR (4 bytes for AF_INET, 16 for AF_INET6):
 * what facts.groups wants. Pure; O(address bits). */
uint64_t policy_client_groups(const struct policy *p, int family, const uint8_t *addr);
/* The names of GROUPS joined by ", " into BUF ("" for none). */
void policy_format_groups(const struct policy *p, uint64_t groups, char *buf, size_t size);
/* Inserts a copy of S into C's scopes at position AT (at most c->nscopes).
 * Returns 0 or -ENOMEM. */
int policy_add_scope(struct policy *p, struct category *c, size_t at,
                     const struct category_scope *s);
/* C's own actions (what clients in none of its scopes get), as a scope's. */
struct category_scope category_actions(const struct category *c);
/* The actions that applied to V's rule: V's scope, or its category's own.
 * V must have a rule. */
struct category_scope verdict_actions(const struct verdict *v);
void policy_set_monitor(struct policy *p, bool monitor);
/* The regime preset (`profile:`) the snapshot was built with (copied). */
int policy_set_profile(struct policy *p, const char *profile);
/* The profile, or "" if none was set. */
const char *policy_profile(const struct policy *p);

/* Records a source file of the snapshot (NAME copied, SHA256 its digest in
 * hex). Returns 0 or -ENOMEM. */
int policy_add_source(struct policy *p, const char *name, const char *sha256);
size_t policy_source_count(const struct policy *p);
const struct policy_source *policy_source_at(const struct policy *p, size_t i);
/* Sets the version: a short identifier of exactly the rule text in force,
 * derived by the loader from the sources' digests. VERSION is copied. */
void policy_set_version(struct policy *p, const char *version);
/* The version, or "" if none was set. NULL-safe. */
const char *policy_version(const struct policy *p);

/* Reference counting: a snapshot is shared read-only; each user holds a ref.
 * policy_new returns a snapshot with one reference. */
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p); /* NULL-safe; frees on the last unref */

/* Decides on FACTS at time NOW (seconds since the epoch). Always fills OUT.
 * Every fact is judged on its own and the strictest verdict wins (deny over
 * log over allow; at equal strength the first in the order host, SNI, CNAME
 * chain, addresses, JA4). Names match host rules, addresses match network
 * rules (longest prefix; an IP-literal host counts as an address too), the
 * JA4 string matches JA4 rules, and last, after every other fact, a
 * plain-HTTP request's path matches path rules (pathmatch.h) whatever the
 * host. For one name, the most specific host rule
 * gives the action from its category:
 * `before` while NOW < cutoff, `after` from the cutoff on. An unexpired
 * exception (expires > NOW) matching the host overrides a vendor rule: the
 * verdict is then ACTION_LOG with reason VERDICT_EXCEPTION, so the override
 * is recorded. With no vendor match the verdict is ACTION_ALLOW,
 * VERDICT_NO_MATCH. IP-literal hosts only match exact host patterns equal to
 * their text. An exception matching the requested host also covers its
 * CNAME chain, addresses and path; an SNI name needs its own. OUT->from says
 * whether the list, a preset or an override set the action that applied. A hint-confidence
 * rule never yields more than ACTION_LOG. Monitor mode turns ACTION_DENY into ACTION_LOG and sets
 * out->monitor (out->rule_action keeps ACTION_DENY).
 *
 * Client groups: FACTS->groups are the client's. A vendor list scoped to
 * groups is judged only for their clients, on its own (its patterns never
 * hide another list's); an exception scoped to groups opens only for their
 * clients; a category's first scope naming one of the client's groups gives
 * its actions. Among the exceptions that match a name, the most specific
 * one for every client counts first, then those of each set of groups in
 * the order declared: the first unexpired one applies. OUT->client_group
 * names the group whose exception, scope or list decided. */
void policy_decide(const struct policy *p, const struct facts *facts, int64_t now,
                   struct verdict *out);

/* Accessors for summaries and `embargo check`. */
bool policy_monitor(const struct policy *p);
size_t policy_vendor_count(const struct policy *p);
const struct vendor *policy_vendor_at(const struct policy *p, size_t i);
size_t policy_host_count(const struct policy *p);
size_t policy_exception_count(const struct policy *p);
size_t policy_network_count(const struct policy *p);
size_t policy_ja4_count(const struct policy *p);
size_t policy_path_count(const struct policy *p);
/* "host", "sni", "cname", "address", "ja4", "path" */
const char *match_on_name(enum match_on on);
/* "list", "preset", "override" */
const char *action_from_name(enum action_from from);
/* Rule I in declaration order, or NULL past the end. */
/* Every rule of every kind, in declaration order. */
size_t policy_rule_count(const struct policy *p);
const struct rule *policy_rule_at(const struct policy *p, size_t i);
const struct exception_rule *policy_exception_at(const struct policy *p, size_t i);

const char *action_name(enum action a);             /* "allow", "log", "deny" */
/* How strict A is: deny 2, log 1, allow 0 (the strictest verdict wins). */
int action_strength(enum action a);
int action_parse(const char *s, enum action *out);  /* 0 or -EINVAL */

#endif
