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
 * root is never kept by accident. When not running as root (a service
 * manager's User= and AmbientCapabilities=), nothing changes: the user and
 * the capabilities the process was started with stay, are logged, and
 * USER is not used (a note says so when it names another user). Call after every listener is bound
 * and every file is open, before any thread that needs the kept
 * capability is created (threads inherit it from the caller; others lose
 * every capability). Returns 0 or a negative code with the reason in ERR. */
int privdrop_apply(const char *user, bool keep_net_admin, char *err, size_t errsize);

/* Called with one message naming a file and the user. */
typedef void (*privdrop_warn_fn)(void *arg, const char *msg);

/* For each of the N paths in FILES that USER (an account other than root;
 * for root or an unknown user nothing is checked) could not read, judged by
 * the mode bits of the file and of every directory on the way with the
 * user's uid and primary group (what privdrop_apply leaves; ACLs are not
 * read), calls WARN with a message naming the file, the user and what stops
 * it. A reload reads the configuration, the vendor lists, the token file
 * and the CA as that user. Returns the number of warnings. */
size_t privdrop_warn_unreadable(const char *user, const char *const *files, size_t n,
                                privdrop_warn_fn warn, void *arg);

#endif
