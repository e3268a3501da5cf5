/* `embargo config keys`: every key the configuration loader accepts, read
 * from its directive tables, so that documentation can be checked against
 * the parser itself. */
#ifndef EMBARGO_CONFIG_KEYS_H
#define EMBARGO_CONFIG_KEYS_H

#include <stdio.h>

/* Prints every key of a configuration file (WHICH "config" or NULL) or of
 * a vendor list file (WHICH "vendor-list") to OUT, one key path a line in
 * table order, a mapping before the keys under it: "timeouts",
 * "timeouts.connect", "listen[].address" (a list item's mapping form),
 * "categories.NAME.cutoff" (NAME: a name the file chooses). Returns 0, or
 * -EINVAL for another WHICH. */
int config_keys_print(const char *which, FILE *out);

#endif
