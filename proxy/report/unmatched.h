/* `embargo report --unmatched`: the names seen in the decision log under a
 * vendor's registered domains (its list's `domains:`) that no host rule of
 * the configuration matches, with the clients that asked for them and how
 * often: the list's blind spots, found from the site's own traffic
 * (`access_log: true` logs the requests nothing matched). Bounded: at most
 * UNMATCHED_MAX_NAMES names and UNMATCHED_MAX_CLIENTS clients a name; what
 * does not fit is counted. */
#ifndef EMBARGO_PROXY_UNMATCHED_H
#define EMBARGO_PROXY_UNMATCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "proxy/report/inventory-t.h"

#define UNMATCHED_MAX_NAMES   4096
#define UNMATCHED_MAX_CLIENTS 16

struct unmatched;

/* Loads the configuration at CONFIG (NULL: the built-in one) for its vendor
 * domains and host rules; FILTER's time bounds and vendor apply (borrowed,
 * must outlive U). Returns 0, or EMB_ECONFIG / -ENOMEM with ERR set. */
int unmatched_open(const char *config, const struct inventory_filter *filter,
                   struct unmatched **out, char *err, size_t errsize);

/* Counts F (a log line's host, client and time) if its host is under a
 * vendor's domains and no host rule matches it. Returns 0 or -ENOMEM. */
int unmatched_add(struct unmatched *u, const struct inventory_fact *f);

/* Writes the names found, busiest first per vendor, as an aligned table or
 * (JSON true) one JSON document. Returns 0 or a negative errno. */
int unmatched_write(const struct unmatched *u, bool json, FILE *out);

void unmatched_free(struct unmatched *u); /* NULL-safe */

/* True when ARGV (a report's arguments) asks for --unmatched. */
bool unmatched_wanted(int argc, char **argv);

/* Runs `embargo report --unmatched [options] [LOG...]` (ARGV[0] is
 * "report"); CONFIG is -c given before the command, or NULL. Returns the
 * exit status as report_main does. */
int unmatched_main(const char *config, int argc, char **argv);

#endif
