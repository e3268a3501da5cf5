/* RFC 3339 timestamps and durations. Pure. */
#ifndef EMBARGO_FILTERS_TIMEFMT_H
#define EMBARGO_FILTERS_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" ('t'/'z' and a space
 * for 'T' accepted) into seconds since the Unix epoch, fractions dropped.
 * A zone is mandatory. Returns 0 or EMB_EBADTIME. */
int rfc3339_parse(const char *text, size_t len, int64_t *out);

/* Formats T as "YYYY-MM-DDTHH:MM:SSZ" into BUF (at least 21 bytes). Returns
 * the length written. */
int rfc3339_format(int64_t t, char *buf, size_t size);

/* Parses a duration: a non-negative integer with unit ms, s, m or h
 * ("250ms", "10s", "5m"); a bare number means seconds. Returns 0 or -EINVAL;
 * *out_ms gets milliseconds. */
int duration_parse(const char *text, size_t len, uint64_t *out_ms);

#endif
