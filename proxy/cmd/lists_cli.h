/* `embargo lists keygen|sign|verify|fetch`. */
#ifndef EMBARGO_PROXY_LISTS_CLI_H
#define EMBARGO_PROXY_LISTS_CLI_H

#include <stdint.h>

/* Runs `embargo lists ARGV...` (ARGV[0] is the command). CONFIG is the
 * configuration file named before the command (-c), or NULL; NOW (--now;
 * 0: the real clock) is when `sign` says the bundle was created. Returns the
 * exit status: 0 success (fetch: a new bundle cached, or the one in force
 * again), 1 a refused key, bundle or update, 2 usage or configuration
 * errors. */
int lists_main(const char *config, int64_t now, int argc, char **argv);

#endif
