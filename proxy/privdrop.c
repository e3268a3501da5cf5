/* Switching from root to the configured user once listeners are bound. */
#include "proxy/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "proxy/log.h"

/* Sets the groups, gid and uid of PW, in that order (groups and gid need
 * root). Returns 0 or -errno with the failed step in ERR. */
static int switch_to(const struct passwd *pw, char *err, size_t errsize) {
  gid_t gid = pw->pw_gid;
  if (setgroups(1, &gid) != 0) {
    snprintf(err, errsize, "user %s: cannot set groups: %s", pw->pw_name, strerror(errno));
    return -errno;
  }
  if (setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
    snprintf(err, errsize, "user %s: cannot switch to uid %u gid %u: %s", pw->pw_name,
             (unsigned)pw->pw_uid, (unsigned)gid, strerror(errno));
    return -errno;
  }
  if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
    snprintf(err, errsize, "user %s: root could be regained after switching", pw->pw_name);
    return -EPERM;
  }
  return 0;
}

int privdrop_apply(const char *user, char *err, size_t errsize) {
  const struct passwd *pw;
  int rc;

  if (geteuid() != 0)
    return 0;
  if (user == NULL || user[0] == '\0') {
    snprintf(err, errsize, "started as root without a user to run as: set `user:` (or --user) "
                           "to an unprivileged account, or to root to stay root");
    return -EPERM;
  }
  errno = 0;
  if ((pw = getpwnam(user)) == NULL) {
    snprintf(err, errsize, "user %s: %s", user,
             errno != 0 ? strerror(errno) : "no such user (set `user:` or --user)");
    return errno != 0 ? -errno : -ENOENT;
  }
  if (pw->pw_uid == 0) {
    log_diag(LOG_WARN, 0, "running as root because `user: %s` says so", user);
    return 0;
  }
  if ((rc = switch_to(pw, err, errsize)) != 0)
    return rc;
  /* The credential change made the process non-dumpable; as an ordinary
   * unprivileged process it may dump core (and be debugged) like any other. */
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  log_diag(LOG_INFO, 0, "running as user %s (uid %u, gid %u)", pw->pw_name,
           (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
  return 0;
}
