/* Giving up root: a proxy started as root binds its listeners (ports below
 * 1024 included) and then runs as the configured unprivileged user. */
#ifndef EMBARGO_PROXY_PRIVDROP_H
#define EMBARGO_PROXY_PRIVDROP_H

#include <stddef.h>

/* If the process runs as root, switches it to USER: its uid, its primary
 * group as the only group, and checks that root cannot be regained. USER
 * "root" (or any account with uid 0) keeps root deliberately, with a
 * warning; an empty USER is refused, so root is never kept by accident.
 * When not running as root, nothing changes and USER is not looked at.
 * Call after every listener is bound and every file is open. Returns 0 or
 * a negative code with the reason in ERR. */
int privdrop_apply(const char *user, char *err, size_t errsize);

#endif
