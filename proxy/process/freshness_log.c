/* The daily warning about stale vendor lists. */
#include "proxy/process/freshness_log.h"

#include <stdbool.h>

#include "filters/policy.h"
#include "proxy/base/freshness.h"
#include "proxy/base/log.h"

/* FNV-1a over the ids of the stale lists: tells a new set from the last. */
static uint64_t stale_set_of(const struct policy *p, int64_t now, size_t *count) {
  uint64_t h = 1469598103934665603ull;
  const struct vendor *v;
  *count = 0;
  for (size_t i = 0; (v = freshness_next_stale(p, now, &i)) != NULL;) {
    (*count)++;
    for (const char *s = v->id; *s; s++)
      h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ '\n') * 1099511628211ull;
  }
  return h;
}

size_t freshness_log_stale(const struct policy *p, int64_t now, uint64_t now_ms,
                           struct freshness_log *st) {
  const struct vendor *v;
  char text[1200];
  size_t n;
  uint64_t set = stale_set_of(p, now, &n);
  bool due = st->warned_ms == 0 || set != st->stale_set ||
             now_ms - st->warned_ms >= FRESHNESS_WARN_EVERY_MS;
  if (n == 0) {
    st->stale_set = set; /* a list going stale again later is news */
    st->warned_ms = 0;
    return 0;
  }
  if (!due)
    return n;
  for (size_t i = 0; (v = freshness_next_stale(p, now, &i)) != NULL;) {
    freshness_describe(v, now, text, sizeof(text));
    log_diag(LOG_WARN, 0, "%s; review it and update it (this warning repeats daily)", text);
  }
  st->warned_ms = now_ms != 0 ? now_ms : 1;
  st->stale_set = set;
  return n;
}
