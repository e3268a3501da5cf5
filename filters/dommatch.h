/* Domain-pattern matcher. Patterns are stored in a trie of labels keyed from
 * the top-level label down, so a lookup costs O(length of the name), not
 * O(number of patterns). Pure: no I/O.
 *
 * Pattern syntax (all lowercase ASCII, no trailing dot):
 *   example.com        exactly this name
 *   *.example.com      any name strictly below example.com
 *   .example.com       example.com itself and any name below it
 *   dnl-*.geo.example.com, s[0-1][0-9].upd.example.com
 *                      label globs: in any label, '*' matches any run of
 *                      characters within the label (never a dot), '?' one
 *                      character, '[a-z0-9]' one character from a set
 *                      ('-' ranges, no negation).
 * A leading "*." label is a subdomain wildcard; a '*' inside any other label
 * is a glob. When several patterns match, the most specific wins: more
 * matched labels beat fewer; at equal depth an exact label beats a glob, and
 * a glob beats a subdomain wildcard. */
#ifndef EMBARGO_FILTERS_DOMMATCH_H
#define EMBARGO_FILTERS_DOMMATCH_H

#include <stddef.h>

struct dommatch;

/* Returns a new, empty matcher, or NULL on allocation failure. */
struct dommatch *dommatch_new(void);
/* Frees the matcher; the DATA pointers given to dommatch_add are not freed. NULL-safe. */
void dommatch_free(struct dommatch *m);

/* Checks PATTERN's syntax without adding it. Returns 0 or EMB_EBADPATTERN;
 * on error *why (if not NULL) is set to a static reason string. */
int dommatch_check(const char *pattern, size_t len, const char **why);

/* Adds PATTERN (copied) with DATA (borrowed, returned by lookups). Returns 0,
 * EMB_EBADPATTERN (see dommatch_check), EMB_EDUPLICATE if the same pattern
 * was already added (the first one stays), or -ENOMEM. */
int dommatch_add(struct dommatch *m, const char *pattern, size_t len, void *data);

/* Looks up NAME, which must already be normalised (see normalise.h). Returns
 * the DATA of the most specific matching pattern, or NULL. */
void *dommatch_lookup(const struct dommatch *m, const char *name, size_t len);

/* Number of patterns added. */
size_t dommatch_count(const struct dommatch *m);

#endif
