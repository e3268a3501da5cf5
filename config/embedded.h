/* Files compiled into the binary: the default config and the shipped vendor lists. */
#ifndef EMBARGO_CONFIG_EMBEDDED_H
#define EMBARGO_CONFIG_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
  const char *path; /* relative to the source tree, e.g. "config/vendors/kaspersky.yaml" */
  const char *data; /* NUL-terminated */
  size_t len;
};

/* Terminated by an entry whose path is NULL. */
extern const struct embedded_file embedded_files[];

/* Returns the embedded file at PATH, or NULL. */
const struct embedded_file *embedded_find(const char *path);

#endif
