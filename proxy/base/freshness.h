/* How old each vendor list is, measured on the policy clock from its
 * `reviewed` date or, for a list from a signed bundle made later, the
 * bundle's creation, and whether it is past its `max_age` (the warning in the
 * log about lists that are: proxy/freshness_log.h). A stale list is still enforced: this module
 * only describes it; /readyz (proxy/admin.c) decides what it costs. */
#ifndef EMBARGO_PROXY_FRESHNESS_H
#define EMBARGO_PROXY_FRESHNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/policy-t.h"

struct policy;

/* One vendor list's age at a given time. */
struct freshness {
  bool known;         /* the list says when it was reviewed, or came in a bundle */
  int64_t since;      /* the later of `reviewed` and its bundle's creation */
  int64_t age;        /* seconds since then (negative: after the time asked) */
  bool limited;       /* it has a max_age */
  bool stale;         /* past since + max_age */
  int64_t stale_from; /* since + max_age, when limited */
};

/* V's freshness at NOW (policy clock, seconds since the epoch). */
void freshness_of(const struct vendor *v, int64_t now, struct freshness *out);

/* "180d" for whole days, else "3600s". */
void freshness_duration_text(uint64_t seconds, char *buf, size_t size);

/* Describes stale V at NOW: "vendor list ID (FILE) is stale: reviewed T,
 * max_age D, past it since T2; still enforced" ("published T (bundle N)"
 * when its bundle is the later date). */
void freshness_describe(const struct vendor *v, int64_t now, char *buf, size_t size);

/* The first vendor list of P past its max_age at NOW from index *I on, with
 * *I moved past it; NULL when there is none. Walks every stale list with
 *   for (size_t i = 0; (v = freshness_next_stale(p, now, &i)) != NULL;) */
const struct vendor *freshness_next_stale(const struct policy *p, int64_t now, size_t *i);

/* Whether P has a vendor list past its max_age at NOW; the first one is
 * described into REASON (may be NULL). */
bool freshness_any_stale(const struct policy *p, int64_t now, char *reason, size_t size);

#endif
