/* Switching from root to the configured user once listeners are bound,
 * keeping only the capabilities the configuration needs. */
#include "proxy/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proxy/log.h"

/* Sets this thread's capabilities: effective and permitted exactly KEEP (a
 * mask of CAP_* bits), inheritable none. Raw system calls: one call does
 * not justify linking libcap. Returns 0 or -errno. */
static int caps_set(uint64_t keep) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof(data));
  data[0].effective = data[0].permitted = (uint32_t)keep;
  data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
  return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -errno;
}

/* This thread's effective capabilities as a mask, or UINT64_MAX when they
 * cannot be read. */
static uint64_t caps_effective(void) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0)
    return UINT64_MAX;
  return (uint64_t)data[0].effective | (uint64_t)data[1].effective << 32;
}

/* Sets the groups, gid and uid of PW, in that order (groups and gid need
 * root), keeping the capabilities in KEEP (0: none) across the uid change.
 * Returns 0 or -errno with the failed step in ERR. */
static int switch_to(const struct passwd *pw, uint64_t keep, char *err, size_t errsize) {
  gid_t gid = pw->pw_gid;
  int rc;
  if (setgroups(1, &gid) != 0) {
    snprintf(err, errsize, "user %s: cannot set groups: %s", pw->pw_name, strerror(errno));
    return -errno;
  }
  /* Without KEEPCAPS the uid change clears every capability; with it the
   * permitted set survives (the effective one is cleared) until caps_set
   * narrows it to KEEP. The flag is this thread's; other threads lose all. */
  if (keep != 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
    snprintf(err, errsize, "cannot keep capabilities across the user change: %s", strerror(errno));
    return -errno;
  }
  if (setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
    snprintf(err, errsize, "user %s: cannot switch to uid %u gid %u: %s", pw->pw_name,
             (unsigned)pw->pw_uid, (unsigned)gid, strerror(errno));
    return -errno;
  }
  if (keep != 0) {
    rc = caps_set(keep);
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (rc != 0) {
      snprintf(err, errsize, "user %s: cannot keep CAP_NET_ADMIN: %s", pw->pw_name, strerror(-rc));
      return rc;
    }
  }
  if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
    snprintf(err, errsize, "user %s: root could be regained after switching", pw->pw_name);
    return -EPERM;
  }
  if (caps_effective() != keep) {
    snprintf(err, errsize, "user %s: capabilities other than the ones needed remain", pw->pw_name);
    return -EPERM;
  }
  return 0;
}

int privdrop_apply(const char *user, bool keep_net_admin, char *err, size_t errsize) {
  const struct passwd *pw;
  uint64_t keep = keep_net_admin ? (uint64_t)1 << CAP_NET_ADMIN : 0;
  int rc;

  if (geteuid() != 0)
    return 0;
  if (user == NULL || user[0] == '\0') {
    snprintf(err, errsize,
             "started as root without a user to run as: set `user:` (or --user) "
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
  if ((rc = switch_to(pw, keep, err, errsize)) != 0)
    return rc;
  /* The credential change made the process non-dumpable; as an ordinary
   * unprivileged process it may dump core (and be debugged) like any other.
   * A process holding a capability its tracer lacks still cannot be traced. */
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  log_diag(LOG_INFO, 0, "running as user %s (uid %u, gid %u), %s", pw->pw_name,
           (unsigned)pw->pw_uid, (unsigned)pw->pw_gid,
           keep != 0 ? "keeping CAP_NET_ADMIN (for mark:, SO_MARK) and no other capability"
                     : "no capabilities");
  return 0;
}
