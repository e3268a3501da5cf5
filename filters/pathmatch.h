/* Request-path pattern matcher: a vendor's update files recognised by the
 * path of a plain-HTTP request, whatever the host (mirrors, CDNs, open
 * directories). Pure: no I/O, no allocation while matching.
 *
 * Pattern syntax (matching ignores ASCII case):
 *   /updates/index/u0607g.xml      the whole path, segment by segment
 *   ** /index/u0607g.xml            (written without the space) the last
 *                                  segments of the path, under any prefix
 *   segment globs: '*' any run within a segment (never a '/'), '?' one
 *   character, '[a-z0-9]' one character from a set ('-' ranges).
 * A "**" is allowed only as the first segment. Patterns must be specific
 * (pathmatch_check): at least two segments besides "**", one of them before
 * the last fully literal, and at least 4 literal characters in the last
 * (a file name or extension), so that "/bases/" alone can never be a rule.
 *
 * A path is judged as a server would read it: the query and fragment cut,
 * %XX escapes decoded (%2F included), '\' taken as '/', empty and "."
 * segments dropped, ".." removing the segment before it, ASCII lowercased.
 * Only its last PATHMATCH_MAX_SEGMENTS segments are kept (enough for any
 * pattern); a segment longer than PATHMATCH_MAX_SEGMENT bytes is matched
 * only by a pattern segment that is exactly "*". The work per lookup is
 * linear in the path's length plus the patterns' total length. */
#ifndef EMBARGO_FILTERS_PATHMATCH_H
#define EMBARGO_FILTERS_PATHMATCH_H

#include <stddef.h>

#define PATHMATCH_MAX_SEGMENTS 16  /* segments of a pattern, and trailing segments kept */
#define PATHMATCH_MAX_SEGMENT  127 /* bytes of one segment */

struct pathmatch;

/* Returns a new, empty matcher, or NULL on allocation failure. */
struct pathmatch *pathmatch_new(void);
/* Frees M; the DATA pointers given to pathmatch_add are not freed. NULL-safe. */
void pathmatch_free(struct pathmatch *m);

/* Checks PATTERN's syntax and specificity without adding it. Returns 0 or
 * EMB_EBADPATTERN with *why (if not NULL) set to a static reason. */
int pathmatch_check(const char *pattern, size_t len, const char **why);

/* Adds PATTERN (copied, lowercased) with DATA (borrowed). Returns 0,
 * EMB_EBADPATTERN, EMB_EDUPLICATE (the same pattern, ignoring case, was
 * added already; the first stays) or -ENOMEM. */
int pathmatch_add(struct pathmatch *m, const char *pattern, size_t len, void *data);

/* Judges PATH (LEN bytes, a request's origin-form target: "/a/b?q", as
 * sent). Returns the DATA of the most specific matching pattern (more
 * segments, then more literal characters, then the one added first), or
 * NULL. */
void *pathmatch_lookup(const struct pathmatch *m, const char *path, size_t len);

/* Number of patterns added. */
size_t pathmatch_count(const struct pathmatch *m);

#endif
