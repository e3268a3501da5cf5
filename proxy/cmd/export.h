/* `embargo export`: the policy in force for the other layers (an RPZ zone,
 * an Unbound local-zone file, dnsmasq options, a hosts file, nftables sets
 * of the vendor networks, Squid ACLs), each entry with Embargo's meaning or
 * left out with the reason. */
#ifndef EMBARGO_PROXY_EXPORT_H
#define EMBARGO_PROXY_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct policy;
struct export_format;

/* What to export. */
struct export_opts {
  const struct export_format *format; /* from export_format_find */
  const char *vendor;                 /* a vendor id, or NULL for every vendor */
  const char *category;               /* a category name, or NULL for every one */
  bool want[3];                       /* by enum action: the actions exported (allow never) */
  int64_t now;                        /* the policy time cutoffs are compared with */
};

/* The format NAME ("rpz", "unbound", "dnsmasq", "hosts", "nft-set",
 * "squid"), or NULL. */
const struct export_format *export_format_find(const char *name);

/* Writes P's rules selected by O as O's format to OUT, starting with a
 * comment naming the policy version and each list's reference and reviewed
 * date; entries the format cannot write with Embargo's meaning are listed in
 * that comment and on ERR. Returns 0 or -ENOMEM. */
int export_policy(const struct policy *p, const struct export_opts *o, FILE *out, FILE *err);

/* Runs `embargo export ARGV...` (ARGV[0] is "export"). CONFIG (-c before
 * the command) and NOW (--now, 0: the clock) may be given again after it.
 * Returns the exit status: 0, 1 when out of memory, 2 for usage or
 * configuration errors. */
int export_main(const char *config, int64_t now, int argc, char **argv);

#endif
