/* Giving up root: a proxy started as root binds its listeners (ports below
 * 1024 included) and then runs as the configured unprivileged user, with
 * only the capabilities its configuration needs. */
#ifndef EMBARGO_PROXY_PRIVDROP_H
#define EMBARGO_PROXY_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>

/* If the process runs as root, switches it to USER: its uid, its primary
 * group as the only group, and checks that root cannot be regained. With
 * KEEP_NET_ADMIN (`mark:` set: SO_MARK on every dial needs it) CAP_NET_ADMIN
 * is kept across the switch, effective and permitted, and nothing else;
 * otherwise no capability is left. USER "root" (or any account with uid 0)
 * keeps root deliberately, with a warning; an empty USER is refused, so
 * root is never kept by accident. When not running as root, nothing
 * changes and USER is not looked at. Call after every listener is bound
 * and every file is open, before any thread that needs the kept
 * capability is created (threads inherit it from the caller; others lose
 * every capability). Returns 0 or a negative code with the reason in ERR. */
int privdrop_apply(const char *user, bool keep_net_admin, char *err, size_t errsize);

#endif
