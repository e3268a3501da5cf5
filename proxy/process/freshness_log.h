/* The warning on standard error about vendor lists past their max_age:
 * once per list when the set of stale lists changes, and again daily. */
#ifndef EMBARGO_PROXY_FRESHNESS_LOG_H
#define EMBARGO_PROXY_FRESHNESS_LOG_H

#include <stddef.h>
#include <stdint.h>

struct policy;

/* What freshness_log_stale remembers between calls. */
struct freshness_log {
  uint64_t warned_ms; /* monotonic time of the last warnings; 0: never */
  uint64_t stale_set; /* a hash of the stale lists then warned about */
};

#define FRESHNESS_WARN_EVERY_MS (24ull * 3600 * 1000)

/* Writes one warning on standard error per vendor list of P past its
 * max_age at NOW, when the set of stale lists differs from the one last
 * warned about or a day (NOW_MS, a monotonic clock in ms) has passed since.
 * Returns the number of stale lists. */
size_t freshness_log_stale(const struct policy *p, int64_t now, uint64_t now_ms,
                           struct freshness_log *st);

#endif
