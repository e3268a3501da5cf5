/* A parsed YAML document whose nodes remember where they were written. The
 * only module that includes libyaml: the loader sees opaque nodes, their
 * kind, text and position. */
#ifndef EMBARGO_CONFIG_YAML_H
#define EMBARGO_CONFIG_YAML_H

#include <stddef.h>

#include "filters/policy-t.h"

struct ydoc;
struct ynode;

enum ynode_kind {
  YNODE_NULL,   /* a plain empty scalar, "~" or "null" */
  YNODE_SCALAR, /* any other scalar, quoted or not */
  YNODE_LIST,
  YNODE_MAP
};

/* Parses the LEN bytes at DATA (need not be NUL-terminated) as a single YAML
 * document named FILE (copied; used in positions and errors). On success
 * *out owns the document (ydoc_free). On a syntax error returns EMB_ECONFIG
 * with "FILE:line:col: syntax error: problem (context)" in ERR; -ENOMEM on
 * allocation failure. */
int ydoc_load(const char *file, const char *data, size_t len, struct ydoc **out, char *err,
              size_t errsize);
void ydoc_free(struct ydoc *d); /* NULL-safe */

/* The name given to ydoc_load; borrowed from D. */
const char *ydoc_file(const struct ydoc *d);
/* The top node, or NULL for an empty document. Nodes are borrowed from D. */
const struct ynode *ydoc_root(const struct ydoc *d);

enum ynode_kind ynode_kind(const struct ynode *n);
/* The text of a scalar or null node (NUL-terminated, borrowed), else NULL. */
const char *ynode_text(const struct ynode *n);
size_t ynode_len(const struct ynode *n);
/* Number of items of a list or pairs of a map; 0 for scalars. */
size_t ynode_count(const struct ynode *n);
/* Item I of list N. */
const struct ynode *ynode_item(const struct ydoc *d, const struct ynode *n, size_t i);
/* Key and value of pair I of map N. */
const struct ynode *ynode_key(const struct ydoc *d, const struct ynode *n, size_t i);
const struct ynode *ynode_value(const struct ydoc *d, const struct ynode *n, size_t i);
/* Where N starts: file (borrowed from D), 1-based line and column. */
struct origin ynode_origin(const struct ydoc *d, const struct ynode *n);

#endif
