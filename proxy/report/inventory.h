/* The inventory behind `embargo report`: attempts aggregated per vendor and
 * client address. Pure: no files, no clock; the caller feeds it facts. */
#ifndef EMBARGO_PROXY_INVENTORY_H
#define EMBARGO_PROXY_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/report/inventory-t.h"

/* Starts an empty inventory that keeps what FILTER lets through (copied; its
 * vendor string stays borrowed). SEED randomises the hash tables. */
void inventory_init(struct inventory *inv, const struct inventory_filter *filter, uint64_t seed);

/* Frees everything the inventory owns; INV may then be initialised again. */
void inventory_free(struct inventory *inv);

/* Counts one attempt: F->time_ms and F->vendor are required. Returns 0 when
 * it was counted, 1 when the filter left it out, -ENOMEM (the inventory is
 * unchanged as far as this fact goes). Does not count F in counts.lines. */
int inventory_add(struct inventory *inv, const struct inventory_fact *f);

/* Parses an RFC 3339 time ("2024-09-29T04:00:00.123Z", any zone) into
 * milliseconds since the epoch; digits past milliseconds are dropped.
 * Returns 0 or EMB_EBADTIME. */
int inventory_parse_time(const char *text, size_t len, int64_t *out_ms);

/* Formats MS as "YYYY-MM-DDTHH:MM:SS.mmmZ" into BUF (at least 25 bytes).
 * Returns BUF. */
char *inventory_format_time(int64_t ms, char *buf, size_t size);

/* Formats the UTC day DAY (days since 1970-01-01) as "YYYY-MM-DD" into BUF
 * (at least 11 bytes). Returns BUF. */
char *inventory_format_day(int64_t day, char *buf, size_t size);

/* The UTC day (days since 1970-01-01) of MS. */
int64_t inventory_day_of(int64_t ms);

/* The client address of a log's "client" field ("10.0.0.1:5000",
 * "[2001:db8::1]:5000", or a bare IP) without its port, canonical (an
 * IPv4-mapped IPv6 address becomes IPv4) into OUT. Returns 0, or
 * EMB_EBADIP when TEXT holds no IP (OUT is then empty). */
int inventory_client_addr(const char *text, char *out, size_t size);

/* The vendors, sorted by id, and one vendor's clients, most attempts first
 * (then by address). Each returns an array the caller frees (its elements
 * stay owned by the inventory) and its length in *N; NULL with *N 0 when
 * there is nothing, or when memory runs out (*N is then SIZE_MAX). */
struct inventory_vendor **inventory_vendors(const struct inventory *inv, size_t *n);
struct inventory_client **inventory_clients(const struct inventory_vendor *v, size_t *n);

/* A vendor's client count. */
size_t inventory_client_count(const struct inventory_vendor *v);

/* How many of V's clients were seen reaching CATEGORY. *PARTIAL is set when
 * a client's categories were not all kept (INVENTORY_MAX_CATEGORIES), so
 * the count may be low. */
size_t inventory_category_clients(const struct inventory_vendor *v, const char *category,
                                  bool *partial);

#endif
