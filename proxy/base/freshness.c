/* Vendor list freshness: ages and the stale ones. */
#include "proxy/base/freshness.h"

#include <stdio.h>
#include <string.h>

#include "filters/policy.h"
#include "filters/timefmt.h"

void freshness_of(const struct vendor *v, int64_t now, struct freshness *out) {
  memset(out, 0, sizeof(*out));
  /* A signed bundle vouches for its lists when it is made: a list it
   * carries is as old as the later of that and its own review date. */
  out->since = v->bundle_created > v->reviewed ? v->bundle_created : v->reviewed;
  out->known = out->since != 0;
  if (!out->known)
    return;
  out->age = now - out->since;
  out->limited = v->max_age != 0;
  if (!out->limited)
    return;
  out->stale_from = out->since + (int64_t)v->max_age;
  out->stale = now >= out->stale_from;
}

void freshness_duration_text(uint64_t seconds, char *buf, size_t size) {
  if (seconds % 86400 == 0)
    snprintf(buf, size, "%llud", (unsigned long long)(seconds / 86400));
  else
    snprintf(buf, size, "%llus", (unsigned long long)seconds);
}

void freshness_describe(const struct vendor *v, int64_t now, char *buf, size_t size) {
  char from[40], since[40], age[32], bundle[48] = "";
  struct freshness f;
  freshness_of(v, now, &f);
  rfc3339_format(f.since, from, sizeof(from));
  rfc3339_format(f.stale_from, since, sizeof(since));
  freshness_duration_text(v->max_age, age, sizeof(age));
  if (f.since != v->reviewed)
    snprintf(bundle, sizeof(bundle), " (bundle %llu)", (unsigned long long)v->bundle_serial);
  snprintf(buf, size,
           "vendor list %s (%s) is stale: %s %s%s, max_age %s, past it since %s; still "
           "enforced",
           v->id, v->where.file != NULL ? v->where.file : "?",
           f.since != v->reviewed ? "published" : "reviewed", from, bundle, age, since);
}

const struct vendor *freshness_next_stale(const struct policy *p, int64_t now, size_t *i) {
  while (*i < policy_vendor_count(p)) {
    const struct vendor *v = policy_vendor_at(p, (*i)++);
    struct freshness f;
    freshness_of(v, now, &f);
    if (f.stale)
      return v;
  }
  return NULL;
}

bool freshness_any_stale(const struct policy *p, int64_t now, char *reason, size_t size) {
  size_t i = 0;
  const struct vendor *v = freshness_next_stale(p, now, &i);
  if (v != NULL && reason != NULL)
    freshness_describe(v, now, reason, size);
  return v != NULL;
}
