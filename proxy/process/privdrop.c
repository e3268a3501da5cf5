/* Switching from root to the configured user once listeners are bound,
 * keeping only the capabilities the configuration needs, and telling
 * beforehand which files that user will not be able to read. */
#include "proxy/process/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proxy/base/log.h"

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

/* This thread's capability sets as masks; false when they cannot be read. */
struct caps {
  uint64_t effective, permitted, inheritable;
};

static bool caps_get(struct caps *c) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0)
    return false;
  c->effective = (uint64_t)data[0].effective | (uint64_t)data[1].effective << 32;
  c->permitted = (uint64_t)data[0].permitted | (uint64_t)data[1].permitted << 32;
  c->inheritable = (uint64_t)data[0].inheritable | (uint64_t)data[1].inheritable << 32;
  return true;
}

/* This thread's effective capabilities as a mask, or UINT64_MAX when they
 * cannot be read. */
static uint64_t caps_effective(void) {
  struct caps c;
  return caps_get(&c) ? c.effective : UINT64_MAX;
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
  /* The uid change empties the effective and permitted sets (all but KEEP
   * with KEEPCAPS) but not the inheritable one, which whoever started the
   * process may have filled: every set is now exactly KEEP, inheritable
   * none (and so the ambient set too). */
  rc = caps_set(keep);
  if (keep != 0)
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  if (rc != 0) {
    snprintf(err, errsize, "user %s: cannot set the capabilities kept (%s): %s", pw->pw_name,
             keep != 0 ? "CAP_NET_ADMIN" : "none", strerror(-rc));
    return rc;
  }
  if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
    snprintf(err, errsize, "user %s: root could be regained after switching", pw->pw_name);
    return -EPERM;
  }
  struct caps left;
  if (!caps_get(&left) || left.effective != keep || left.permitted != keep ||
      left.inheritable != 0) {
    snprintf(err, errsize, "user %s: capabilities other than the ones needed remain", pw->pw_name);
    return -EPERM;
  }
  return 0;
}

/* Names of the capabilities in MASK into BUF ("none" for none). */
static const char *caps_names(uint64_t mask, char *buf, size_t size) {
  static const struct {
    int cap;
    const char *name;
  } names[] = {{CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE"},
               {CAP_NET_ADMIN, "CAP_NET_ADMIN"},
               {CAP_NET_RAW, "CAP_NET_RAW"}};
  size_t used = 0;
  buf[0] = '\0';
  for (int cap = 0; cap < 64 && used < size; cap++) {
    const char *name = NULL;
    char num[16];
    if (!(mask & ((uint64_t)1 << cap)))
      continue;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
      if (names[i].cap == cap)
        name = names[i].name;
    if (name == NULL)
      snprintf(num, sizeof(num), "capability %d", cap);
    int w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", name ? name : num);
    used += w > 0 ? (size_t)w : 0;
  }
  return buf[0] != '\0' ? buf : "none";
}

/* Not started as root (a service manager's User= with
 * AmbientCapabilities=, or an admin's shell): the process keeps the user
 * and capabilities it was given, and `user:` is not used. Says so. */
static void note_as_started(const char *user) {
  const struct passwd *pw = getpwuid(geteuid());
  const char *name = pw != NULL ? pw->pw_name : "?";
  char caps[256];
  bool other = user != NULL && user[0] != '\0' && strcmp(user, name) != 0;
  log_diag(LOG_INFO, 0, "running as user %s (uid %u, gid %u) as started, capabilities: %s%s%s%s",
           name, (unsigned)geteuid(), (unsigned)getegid(),
           caps_names(caps_effective(), caps, sizeof(caps)), other ? "; `user: " : "",
           other ? user : "", other ? "` applies only when started as root" : "");
}

int privdrop_apply(const char *user, bool keep_net_admin, char *err, size_t errsize) {
  const struct passwd *pw;
  uint64_t keep = keep_net_admin ? (uint64_t)1 << CAP_NET_ADMIN : 0;
  int rc;

  if (geteuid() != 0) {
    note_as_started(user);
    return 0;
  }
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

/* ---- what the runtime user can read ---------------------------------------- */

/* Whether UID/GID get BIT (4 read, 1 search) on ST by its mode: the owner's
 * bits for the owner, the group's for the group, the others' otherwise, as
 * the kernel decides without ACLs. */
static bool mode_allows(const struct stat *st, uid_t uid, gid_t gid, unsigned bit) {
  if (st->st_uid == uid)
    return (st->st_mode & (bit << 6)) != 0;
  if (st->st_gid == gid)
    return (st->st_mode & (bit << 3)) != 0;
  return (st->st_mode & bit) != 0;
}

/* Checks every directory on the way to the absolute path ABS and ABS
 * itself. Returns true when UID/GID may read it; otherwise WHY says what
 * stops it. A path that does not exist is not this check's business. */
static bool path_readable(const char *abs, uid_t uid, gid_t gid, char *why, size_t whysize) {
  char buf[PATH_MAX];
  struct stat st;
  size_t len = strlen(abs);
  if (len >= sizeof(buf))
    return true;
  memcpy(buf, abs, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char saved = buf[i];
    buf[i] = '\0';
    bool last = i == len, ok = true;
    if (stat(buf, &st) == 0) {
      ok = last ? mode_allows(&st, uid, gid, 4)
                : !S_ISDIR(st.st_mode) || mode_allows(&st, uid, gid, 1);
      if (!ok)
        snprintf(why, whysize, "%s %s (mode %04o, owner %u:%u)",
                 last ? "no read permission on" : "no search permission on directory", buf,
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
    }
    buf[i] = saved;
    if (!ok)
      return false;
  }
  return true;
}

/* PATH made absolute (from the working directory) into BUF. */
static const char *absolute(const char *path, char *buf, size_t size) {
  char cwd[PATH_MAX];
  if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
    return path;
  snprintf(buf, size, "%s/%s", cwd, path);
  return buf;
}

size_t privdrop_warn_unreadable(const char *user, const char *const *files, size_t n,
                                privdrop_warn_fn warn, void *arg) {
  const struct passwd *pw = user != NULL && user[0] != '\0' ? getpwnam(user) : NULL;
  char abs[PATH_MAX + 256], real[PATH_MAX], why[PATH_MAX + 128], msg[3 * PATH_MAX];
  size_t warned = 0;
  if (pw == NULL || pw->pw_uid == 0)
    return 0; /* an unknown user stops the start anyway; root reads everything */
  for (size_t i = 0; i < n; i++) {
    const char *path = absolute(files[i], abs, sizeof(abs));
    /* The path as written, then as resolved: a symbolic link on the way
     * needs both. */
    bool ok = path_readable(path, pw->pw_uid, pw->pw_gid, why, sizeof(why));
    if (ok && realpath(path, real) != NULL && strcmp(real, path) != 0)
      ok = path_readable(real, pw->pw_uid, pw->pw_gid, why, sizeof(why));
    if (ok)
      continue;
    snprintf(msg, sizeof(msg),
             "%s will not be readable by user %s (uid %u, gid %u) once Embargo started as root "
             "runs as it, so a reload would fail: %s",
             files[i], pw->pw_name, (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, why);
    warn(arg, msg);
    warned++;
  }
  return warned;
}
