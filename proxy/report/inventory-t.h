/* Types of the inventory `embargo report` builds from decision log lines:
 * per vendor, every client address that tried to reach it and what it was
 * seen doing. Memory grows with the number of distinct (vendor, client)
 * pairs and their distinct values, never with the number of lines: every
 * per-client list is bounded and counts what it did not keep. */
#ifndef EMBARGO_PROXY_INVENTORY_T_H
#define EMBARGO_PROXY_INVENTORY_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INVENTORY_MAX_DESTINATIONS 64   /* distinct destinations kept per client */
#define INVENTORY_MAX_JA4          16   /* distinct JA4 fingerprints kept per client */
#define INVENTORY_MAX_AGENTS       16   /* distinct user agents kept per client */
#define INVENTORY_MAX_CATEGORIES   16   /* distinct categories kept per client */
#define INVENTORY_MAX_CUTOFFS      64   /* distinct (category, cutoff) kept per vendor */
#define INVENTORY_MAX_DAYS         3660 /* days charted per vendor: ten years */
#define INVENTORY_VALUE_MAX        256  /* bytes kept of a value; longer ones end in "..." */
#define INVENTORY_NAME_MAX         128  /* bytes kept of a vendor, client or category */
#define INVENTORY_FACT_SNI_MAX     8    /* server names taken from one line */
#define INVENTORY_TIME_NONE        INT64_MIN

/* A bounded set of distinct strings: the first ones seen, in that order. */
struct inventory_set {
  char **items; /* owned, each owned */
  uint32_t n, alloc;
  uint64_t not_kept; /* occurrences of values that were not kept for lack of room */
};

/* An open-addressing hash table from a string to a record that owns the key.
 * The seed makes a hostile log unable to aim at collisions. */
struct inventory_map_slot {
  uint64_t hash;
  const char *key; /* borrowed from val */
  void *val;       /* NULL: empty slot */
};

struct inventory_map {
  struct inventory_map_slot *slots; /* owned */
  size_t cap, len;
  uint64_t seed;
};

/* One category a client was seen reaching. */
struct inventory_category {
  char *name; /* owned */
  uint64_t attempts, after_cutoff;
};

/* One client address of one vendor. */
struct inventory_client {
  char *addr; /* owned: the IP without port (or the logged text if it was not an IP) */
  int64_t first_ms, last_ms;
  uint64_t attempts, after_cutoff;
  struct inventory_category *cats; /* owned */
  uint32_t ncats, cats_alloc;
  uint64_t cats_not_kept;
  struct inventory_set destinations; /* host and SNI names */
  struct inventory_set ja4;
  struct inventory_set agents;
};

/* A category of a vendor and the cutoff the log gave it. */
struct inventory_cutoff {
  char *category;    /* owned */
  int64_t cutoff_ms; /* INVENTORY_TIME_NONE: no cutoff */
  uint64_t attempts, after_cutoff;
  uint64_t denied;   /* attempts Embargo denied ("event":"deny") */
};

/* Attempts on one UTC day. */
struct inventory_day {
  int64_t day; /* days since 1970-01-01 */
  uint64_t attempts;
};

struct inventory_vendor {
  char *id;                     /* owned */
  struct inventory_map clients; /* addr -> struct inventory_client, owned */
  uint64_t attempts, after_cutoff;
  int64_t first_ms, last_ms;
  struct inventory_cutoff *cutoffs; /* owned */
  uint32_t ncutoffs, cutoffs_alloc;
  uint64_t cutoffs_not_kept;
  struct inventory_day *days; /* owned, sorted by day */
  uint32_t ndays, days_alloc;
  uint64_t days_not_kept; /* attempts on days beyond INVENTORY_MAX_DAYS */
};

/* Which lines count: time in [since, until), and one vendor if set. */
struct inventory_filter {
  int64_t since_ms;   /* INVENTORY_TIME_NONE: no lower bound */
  int64_t until_ms;   /* INVENTORY_TIME_NONE: no upper bound */
  const char *vendor; /* borrowed; NULL: every vendor */
};

/* What happened to the lines read. */
struct inventory_counts {
  uint64_t lines;     /* every line read */
  uint64_t attempts;  /* lines counted as an attempt */
  uint64_t no_vendor; /* lines naming no vendor (other events) */
  uint64_t outside;   /* attempts left out by the filter */
  uint64_t malformed; /* lines that are not a decision record */
};

struct inventory_fact;

struct inventory {
  struct inventory_filter filter;
  /* When set, every line that names a host also goes to ALSO with ALSO_ARG
   * (its fact; time_ms 0 when the line has none), after it is counted:
   * `embargo report --unmatched`. Returns 0 or -ENOMEM. */
  int (*also)(void *also_arg, const struct inventory_fact *f);
  void *also_arg;
  struct inventory_map vendors; /* id -> struct inventory_vendor, owned */
  struct inventory_counts counts;
  int64_t first_ms, last_ms; /* of the attempts counted */
};

/* One attempt as a log line states it. Strings borrowed, NULL when absent. */
struct inventory_fact {
  int64_t time_ms;
  const char *vendor;
  const char *client; /* "ip:port" or "[v6]:port" */
  const char *category;
  int64_t cutoff_ms; /* INVENTORY_TIME_NONE: none given */
  int after_cutoff;  /* 1, 0, or -1 when the line does not say */
  const char *host;
  const char *sni[INVENTORY_FACT_SNI_MAX];
  size_t nsni;
  const char *ja4;
  const char *user_agent;
  int denied;        /* 1: a "deny" line, 0: any other event */
};

#endif
