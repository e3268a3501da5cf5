/* Types of the policy snapshot and of verdicts. See policy.h for the API. */
#ifndef EMBARGO_FILTERS_POLICY_T_H
#define EMBARGO_FILTERS_POLICY_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/normalise.h"

#define POLICY_TIME_NEVER INT64_MAX

/* Client groups (`client_groups:`): named sets of client networks. A set of
 * groups is a bit mask, bit I for the I-th group declared; 0 is no group
 * (for a client) or every client (for what is scoped). */
#define POLICY_MAX_GROUPS 64 /* CLIENTGROUPS_MAX (filters/clientgroups.h) */

enum action {
  ACTION_ALLOW, /* let it through, record nothing beyond the access log */
  ACTION_LOG,   /* let it through and write a decision line */
  ACTION_DENY   /* refuse it and write a decision line */
};

/* Where in a config file something was declared. FILE is owned by the
 * snapshot's string pool. */
struct origin {
  const char *file;
  unsigned line; /* 1-based */
  unsigned col;  /* 1-based */
};

/* How a denied TLS connection is refused: a fatal access_denied alert, or
 * the block page served over TLS with a minted certificate. A category's
 * DENY_WITH_DEFAULT follows the config's tls_inspect.deny_with. */
enum deny_with {
  DENY_WITH_DEFAULT,
  DENY_WITH_ALERT,
  DENY_WITH_PAGE
};

/* Who set a category's `before` or `after` action. */
enum action_from {
  ACTION_FROM_LIST,    /* the vendor list itself */
  ACTION_FROM_PRESET,  /* the preset of the configured `profile:` */
  ACTION_FROM_OVERRIDE /* an `override:` of the site's config */
};

/* What one audience gets from a category: its actions and who set them. A
 * category's own fields are what clients in no scope get; each scope is
 * what the clients of some groups get, from a profile or an override
 * scoped to them (`clients:`). */
enum scope_by {
  SCOPE_BY_PROFILE, /* a `client_profiles:` entry's profile (its presets) */
  SCOPE_BY_OVERRIDE /* a `vendors:` entry with `clients:` (its override) */
};

struct category_scope {
  uint64_t groups; /* for a client in one of these groups */
  uint64_t also;   /* and, unless 0, in one of these too (an override over a profile's scope) */
  enum scope_by by;
  enum action before, after;
  enum action_from before_from, after_from;
  const char *preset;           /* the profile whose preset set an action, or NULL */
  const char *basis;            /* that preset's legal basis, or NULL */
  struct origin override_where; /* the override that set an action (file NULL: none) */
};

/* A category of one vendor's traffic ("updates", "telemetry",
 * "new-installs", ...) with its cutoff. */
struct category {
  const char *name;
  int64_t cutoff;      /* seconds since the epoch; POLICY_TIME_NEVER: no cutoff */
  enum action before;  /* action while now < cutoff (default ACTION_LOG) */
  enum action after;   /* action from the cutoff on (default ACTION_DENY) */
  enum action_from before_from, after_from; /* who set each */
  const char *preset;  /* the profile whose preset set an action, or NULL */
  const char *basis;   /* that preset's legal basis, or NULL */
  struct origin override_where; /* the override that set an action (file NULL: none) */
  enum deny_with deny_with; /* its own `deny_with:`, or DENY_WITH_DEFAULT */
  struct origin where;
  /* Actions for the clients of some groups, owned by the snapshot: the
   * first scope naming one of a client's groups applies to it, these
   * fields to every other client. Overrides' scopes come first. */
  struct category_scope *scopes;
  size_t nscopes;
};

/* A name of a public domain list (v2fly/domain-list-community) a vendor list
 * leaves out on purpose, with the reason (`left_out:`). */
struct left_out {
  const char *name;
  const char *reason;
  struct origin where;
};

struct vendor {
  const char *id;        /* short name used in logs: "kaspersky" */
  const char *name;      /* display name: "Kaspersky Lab" */
  const char *reference; /* legal reference shown in deny pages */
  struct category *categories;
  size_t ncategories;
  struct origin where;
  int64_t reviewed;      /* when the list was last reviewed; 0: not said */
  uint64_t max_age;      /* seconds after `reviewed` the list goes stale; 0: never */
  struct left_out *left_out; /* owned by the snapshot */
  size_t nleft_out;
  /* The signed bundle the list was read from (`lists`): its serial and
   * creation time, a measure of the list's age besides `reviewed`; both 0
   * for a compiled-in list or a file. */
  uint64_t bundle_serial;
  int64_t bundle_created;
  /* The vendor's registered domains (`domains:`), normalised and joined by
   * single spaces, interned in the snapshot; NULL when the list names none.
   * Names under them that no host rule matches are the list's blind spots
   * (`embargo report --unmatched`). */
  const char *domains;
  /* The client groups the list is in force for; 0: every client. Set
   * before the list's rules are added. */
  uint64_t groups;
};

/* A file the snapshot was built from, with the SHA-256 of its bytes. */
struct policy_source {
  const char *name;   /* path, or "builtin:config/vendors/NAME.yaml" */
  char sha256[65];    /* lowercase hex */
};

enum rule_kind {
  RULE_HOST,    /* a host pattern, matched against names */
  RULE_NETWORK, /* a CIDR prefix, matched against addresses */
  RULE_JA4,     /* a JA4 TLS client fingerprint */
  RULE_PATH     /* a request-path pattern, matched on plain-HTTP requests */
};

/* How much a match on a rule proves. A hint is recorded but never denies:
 * vendor networks also carry third parties' traffic. */
enum confidence {
  CONFIDENCE_STRONG, /* the rule's category action applies */
  CONFIDENCE_HINT    /* at most ACTION_LOG */
};

/* One entry of a vendor list. */
struct rule {
  enum rule_kind kind;
  const char *pattern; /* host pattern, "prefix/len", or JA4 string */
  const struct vendor *vendor;
  const struct category *category;
  enum confidence confidence;
  struct origin where;
};

/* An allow-list entry: wins over every vendor rule until it expires. */
struct exception_rule {
  const char *pattern;
  int64_t expires; /* POLICY_TIME_NEVER: never */
  const char *reason; /* may be NULL */
  uint64_t groups;    /* the client groups it opens for; 0: every client */
  struct origin where;
};

/* An IP address without a port. */
struct ip_addr {
  int family;       /* AF_INET or AF_INET6 */
  uint8_t addr[16]; /* AF_INET: the first 4 bytes */
};

/* What the proxy knows about a destination when it asks for a verdict. All
 * borrowed; absent facts are NULL / 0. Names are normalised. */
struct facts {
  const struct host *host;        /* the requested host (URL or CONNECT authority) */
  const char *const *sni;         /* server names from the TLS ClientHello */
  size_t nsni;
  const char *const *cnames;      /* CNAME chain targets of host, in order */
  size_t ncnames;
  const struct ip_addr *addrs;    /* addresses the connection may go to */
  size_t naddrs;
  const char *ja4;                /* JA4 fingerprint of the ClientHello */
  const char *path;               /* a plain-HTTP request's target ("/a/b?q"), as sent */
  size_t path_len;
  uint64_t groups; /* the client's groups (policy_client_groups); 0: none */
};

/* Which fact decided a verdict. */
enum match_on {
  MATCH_NONE,
  MATCH_HOST,    /* facts.host */
  MATCH_SNI,     /* one of facts.sni */
  MATCH_CNAME,   /* one of facts.cnames */
  MATCH_ADDRESS, /* one of facts.addrs, or an IP-literal host */
  MATCH_JA4,     /* facts.ja4 */
  MATCH_PATH     /* facts.path */
};

enum verdict_reason {
  VERDICT_NO_MATCH,  /* nothing in any list matched */
  VERDICT_VENDOR,    /* a vendor rule decided */
  VERDICT_EXCEPTION  /* an unexpired exception overrode a vendor rule */
};

struct verdict {
  enum action action;       /* what the proxy must do */
  enum action rule_action;  /* what the rule said, before monitor mode */
  enum verdict_reason reason;
  bool monitor;             /* monitor mode turned a deny into a log */
  bool after_cutoff;        /* now >= the category's cutoff */
  bool hint;                /* a hint-confidence rule: capped at ACTION_LOG */
  enum action_from from;    /* who set the category action that applied */
  enum match_on on;         /* which fact matched */
  /* The name, address or fingerprint that matched, copied: a verdict is
   * kept (and logged) after the facts it was decided on are gone, such as
   * the DNS answer of a request retried on a fresh connection. */
  char matched[HOST_NAME_MAX_LEN + 1];
  const struct rule *rule;                /* VERDICT_VENDOR/EXCEPTION: the vendor rule, else NULL */
  const struct exception_rule *exception; /* VERDICT_EXCEPTION: the exception */
  const struct category_scope *scope;     /* the group scope whose actions applied, or NULL */
  /* The client group whose scoped exception, scope or vendor list decided
   * (interned in the snapshot), or NULL when nothing scoped did. */
  const char *client_group;
};

#endif
