/* Types of the policy snapshot and of verdicts. See policy.h for the API. */
#ifndef EMBARGO_FILTERS_POLICY_T_H
#define EMBARGO_FILTERS_POLICY_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/normalise.h"

#define POLICY_TIME_NEVER INT64_MAX

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

/* A category of one vendor's traffic ("updates", "telemetry",
 * "new-installs", ...) with its cutoff. */
struct category {
  const char *name;
  int64_t cutoff;      /* seconds since the epoch; POLICY_TIME_NEVER: no cutoff */
  enum action before;  /* action while now < cutoff (default ACTION_LOG) */
  enum action after;   /* action from the cutoff on (default ACTION_DENY) */
  struct origin where;
};

struct vendor {
  const char *id;        /* short name used in logs: "kaspersky" */
  const char *name;      /* display name: "Kaspersky Lab" */
  const char *reference; /* legal reference shown in deny pages */
  struct category *categories;
  size_t ncategories;
  struct origin where;
};

/* One host pattern of a vendor list. */
struct host_rule {
  const char *pattern;
  const struct vendor *vendor;
  const struct category *category;
  struct origin where;
};

/* An allow-list entry: wins over every vendor rule until it expires. */
struct exception_rule {
  const char *pattern;
  int64_t expires; /* POLICY_TIME_NEVER: never */
  const char *reason; /* may be NULL */
  struct origin where;
};

/* What the proxy knows about a destination when it asks for a verdict.
 * Fields grow as later stages learn more (addresses, CNAME chain, SNI). */
struct facts {
  const struct host *host; /* normalised requested host; borrowed */
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
  const char *matched;      /* the name that matched (borrowed from facts) */
  const struct host_rule *rule;           /* VERDICT_VENDOR/EXCEPTION: the vendor rule, else NULL */
  const struct exception_rule *exception; /* VERDICT_EXCEPTION: the exception */
};

#endif
