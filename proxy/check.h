/* `embargo check`: the verdict for destinations given on the command line,
 * with exactly which rule decided it and, for names, the CNAME chain and
 * addresses the configured resolver returns. */
#ifndef EMBARGO_PROXY_CHECK_H
#define EMBARGO_PROXY_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct check_opts {
  int64_t now;            /* policy time, seconds since the epoch */
  const char *const *sni; /* normalised server names to judge as well */
  size_t nsni;
  const char *ja4;        /* a JA4 fingerprint to judge as well, or NULL */
  bool resolve;           /* resolve names through cfg's resolver */
};

/* Prints a verdict for each of DESTS (NAME, IP, NAME:PORT, [v6]:PORT, or a
 * bare IPv6 address: destination_parse), each headed "NAME:PORT: VERDICT"
 * ("[v6]:PORT: ..." for an IPv6 address).
 * Returns 0 if all are allowed, 1 if any is denied or does not resolve (the
 * proxy would open no connection), 2 if any is invalid. */
int check_run(const struct config *cfg, const struct check_opts *o, int ndests,
              char *const *dests);

#endif
