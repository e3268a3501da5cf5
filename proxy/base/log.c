/* Decision log and diagnostics. */
#include "proxy/base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "filters/err.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/base/dns.h"
#include "proxy/base/logq.h"
#include "proxy/base/metrics.h"

#define LOG_LINE_MAX  16384
#define LOG_FIELD_MAX 512 /* peer bytes kept per field */
#define LOG_ITEM_MAX  256 /* peer bytes kept per array element */
/* Room a field may need: key plus an escaped LOG_FIELD_MAX value. A field
 * that might not fit is left out (and "truncated" set) rather than cut, so
 * every line stays valid JSON. */
#define LOG_FIELD_ROOM (64 + 6 * LOG_FIELD_MAX + 8)

static enum log_level diag_level = LOG_INFO;
static char log_path[512] = "-"; /* what log_open was given, for log_reopen */
static uid_t log_owner;          /* besides root, who may own the log file */

/* Why the file open as FD (PATH) is not one to write to, in ERR; 0 if it is.
 * A file of another user, or with other names (hard links), may be one the
 * runtime user planted to have Embargo, as root, write where it cannot. */
static int check_file(int fd, const char *path, char *err, size_t errsize) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, errsize, "%s: %s", path, strerror(errno));
    return -errno;
  }
  if (st.st_uid != 0 && st.st_uid != log_owner) {
    snprintf(err, errsize,
             "%s belongs to uid %u, neither root nor the user Embargo runs as (uid %u): refused",
             path, (unsigned)st.st_uid, (unsigned)log_owner);
    return -EPERM;
  }
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    snprintf(err, errsize, "%s has %lu names (hard links): refused", path,
             (unsigned long)st.st_nlink);
    return -EPERM;
  }
  return 0;
}

/* Makes writes to FD wait again, as the log writer expects. 0 or -errno. */
static int set_blocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
    return -errno;
  return 0;
}

/* Opens PATH for appending, never through a symbolic link (its last
 * component: a link there is refused, dangling or not, so nothing is
 * created elsewhere), and only a file check_file accepts. Never waits: a
 * FIFO no process reads (which an open for writing would wait on forever,
 * at start or on the main loop at SIGUSR1) is refused; one read is written
 * to like any file. Returns the descriptor, or a negative errno with the
 * reason in ERR. */
static int open_file(const char *path, char *err, size_t errsize) {
  int fd = open(
      path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0640);
  struct stat st;
  int rc;
  if (fd < 0) {
    rc = -errno;
    if (rc == -ELOOP)
      snprintf(err, errsize, "%s is a symbolic link: refused (name the file itself)", path);
    else if (rc == -ENXIO && lstat(path, &st) == 0 && S_ISFIFO(st.st_mode))
      snprintf(err, errsize, "%s is a FIFO no process reads: refused", path);
    else
      snprintf(err, errsize, "%s: %s", path, strerror(-rc));
    return rc;
  }
  if ((rc = check_file(fd, path, err, errsize)) == 0 && (rc = set_blocking(fd)) != 0)
    snprintf(err, errsize, "%s: %s", path, strerror(-rc));
  if (rc != 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int log_open(const char *path, size_t bound, uid_t owner, char *err, size_t errsize) {
  int fd = STDOUT_FILENO, sys = 0, rc;
  if (path == NULL)
    path = "-";
  log_owner = owner;
  if (strcmp(path, "syslog") == 0)
    sys = 1, fd = -1;
  else if (strcmp(path, "-") != 0 && (fd = open_file(path, err, errsize)) < 0)
    return fd;
  snprintf(log_path, sizeof(log_path), "%s", path);
  if ((rc = logq_start(fd, sys, bound)) != 0) {
    snprintf(err, errsize, "%s: %s", path, err_str(rc));
    if (fd > STDERR_FILENO)
      close(fd);
  }
  return rc;
}

int log_reopen(char *err, size_t errsize) {
  int fd, rc;
  if (strcmp(log_path, "-") == 0 || strcmp(log_path, "syslog") == 0)
    return 0;
  if ((fd = open_file(log_path, err, errsize)) < 0)
    return fd;
  if ((rc = logq_swap_fd(fd)) != 0) {
    snprintf(err, errsize, "%s: %s", log_path, err_str(rc));
    close(fd);
  }
  return rc;
}

const char *log_destination(void) {
  return log_path;
}

void log_close(void) {
  logq_stop(2000);
}

void log_set_level(enum log_level level) {
  diag_level = level;
}

void log_diag(enum log_level level, uint64_t conn_id, const char *fmt, ...) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  char line[1024];
  int n;
  va_list ap;

  if (level > diag_level)
    return;
  n = conn_id ? snprintf(line, sizeof(line), "embargo: %s: [conn %llu] ", names[level],
                         (unsigned long long)conn_id)
              : snprintf(line, sizeof(line), "embargo: %s: ", names[level]);
  va_start(ap, fmt);
  n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  logq_write(LOGQ_DIAGNOSTIC, line, (size_t)n);
}

char *log_fmt_addr(const struct sockaddr *addr, char *buf, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (addr != NULL && addr->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    snprintf(buf, size, "%s:%u", ip, ntohs(a->sin_port));
  } else if (addr != NULL && addr->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    snprintf(buf, size, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    snprintf(buf, size, "?");
  }
  return buf;
}

char *log_fmt_ip(const struct sockaddr *addr, char *buf, size_t size) {
  snprintf(buf, size, "?");
  if (addr != NULL && addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, buf, (socklen_t)size);
  else if (addr != NULL && addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, buf, (socklen_t)size);
  return buf;
}

size_t log_json_escape(char *buf, size_t pos, size_t size, const char *s, size_t len,
                       size_t maxin) {
  static const char hex[] = "0123456789abcdef";
  size_t i, n = len < maxin ? len : maxin;

  if (size == 0)
    return pos; /* no room even for the terminator */
  for (i = 0; i < n && pos + 7 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      buf[pos++] = '\\';
      buf[pos++] = (char)c;
    } else if (c < 0x20 || c >= 0x7f) {
      /* Peer bytes are not trusted to be UTF-8: every non-printable or
       * non-ASCII byte becomes a \u00XX escape, so the line is always JSON. */
      memcpy(buf + pos, "\\u00", 4);
      buf[pos + 4] = hex[c >> 4];
      buf[pos + 5] = hex[c & 15];
      pos += 6;
    } else {
      buf[pos++] = (char)c;
    }
  }
  if (n < len && pos + 4 < size) {
    memcpy(buf + pos, "...", 3);
    pos += 3;
  }
  buf[pos < size ? pos : size - 1] = '\0';
  return pos;
}

struct jline {
  char buf[LOG_LINE_MAX];
  size_t len;
  bool truncated; /* a field was left out for lack of room */
};

/* Appends S; callers have checked there is room (see j_key). */
static void j_raw(struct jline *j, const char *s) {
  size_t n = strlen(s);
  if (j->len + n < sizeof(j->buf) - 32) {
    memcpy(j->buf + j->len, s, n);
    j->len += n;
  }
}

/* Starts field KEY if a whole field still fits; false if it was left out. */
static bool j_key(struct jline *j, const char *key) {
  if (j->len + LOG_FIELD_ROOM > sizeof(j->buf) - 32) {
    j->truncated = true;
    return false;
  }
  j_raw(j, j->len > 1 ? ",\"" : "\"");
  j_raw(j, key);
  j_raw(j, "\":");
  return true;
}

static void j_strn(struct jline *j, const char *key, const char *val, size_t len) {
  if (val == NULL || !j_key(j, key))
    return;
  j_raw(j, "\"");
  j->len = log_json_escape(j->buf, j->len, sizeof(j->buf) - 32, val, len, LOG_FIELD_MAX);
  j_raw(j, "\"");
}

static void j_str(struct jline *j, const char *key, const char *val) {
  if (val != NULL)
    j_strn(j, key, val, strlen(val));
}

static void j_int(struct jline *j, const char *key, long long v) {
  char num[32];
  snprintf(num, sizeof(num), "%lld", v);
  if (j_key(j, key))
    j_raw(j, num);
}

static void j_bool(struct jline *j, const char *key, int v) {
  if (j_key(j, key))
    j_raw(j, v ? "true" : "false");
}

static void j_array(struct jline *j, const char *key, const char *const *vals, const size_t *lens,
                    size_t n) {
  size_t i;
  if (!j_key(j, key))
    return;
  j_raw(j, "[");
  for (i = 0; i < n; i++) {
    if (j->len + 16 + 6 * LOG_ITEM_MAX > sizeof(j->buf) - 32) {
      j->truncated = true; /* the rest of the list does not fit */
      break;
    }
    j_raw(j, i ? ",\"" : "\"");
    j->len = log_json_escape(j->buf, j->len, sizeof(j->buf) - 32, vals[i],
                             lens != NULL ? lens[i] : strlen(vals[i]), LOG_ITEM_MAX);
    j_raw(j, "\"");
  }
  j_raw(j, "]");
}

static void j_tls(struct jline *j, const struct tls_evidence *t, bool dst_mismatch) {
  const char *tags[TLS_EVIDENCE_MAX + 1];
  size_t i, ntags = 0;
  j_str(j, "tls", t->outcome);
  j_str(j, "tls_reason", t->reason);
  j_array(j, "sni", t->sni, NULL, t->nsni);
  if (t->nalpn > 0)
    j_array(j, "alpn", t->alpn, t->alpn_len, t->nalpn);
  if (t->nversions > 0)
    j_array(j, "tls_versions", t->versions, NULL, t->nversions);
  j_bool(j, "ech", t->ech);
  j_str(j, "ja4", t->ja4);
  for (i = 0; i < t->ntags; i++)
    tags[ntags++] = t->tags[i];
  if (dst_mismatch)
    tags[ntags++] = "dst_mismatch";
  if (ntags > 0)
    j_array(j, "tags", tags, NULL, ntags);
}

/* The CNAME chain and the addresses a name resolved to. */
static void j_resolved(struct jline *j, const struct dns_answer *r) {
  const char *addrs[DNS_MAX_ADDRS];
  char text[DNS_MAX_ADDRS][INET6_ADDRSTRLEN];
  size_t i;

  for (i = 0; i < r->naddrs && i < DNS_MAX_ADDRS; i++)
    addrs[i] = log_fmt_ip((const struct sockaddr *)&r->addrs[i], text[i], sizeof(text[i]));
  if (r->ncnames > 0)
    j_array(j, "cnames", r->cnames, NULL, r->ncnames);
  j_array(j, "addresses", addrs, NULL, i);
}

static void j_time(struct jline *j, const char *key, int64_t t) {
  char ts[40];
  rfc3339_format(t, ts, sizeof(ts));
  j_str(j, key, ts);
}

static void j_origin(struct jline *j, const char *key, const struct origin *o) {
  char where[600];
  if (o->file == NULL)
    return;
  snprintf(where, sizeof(where), "%s:%u", o->file, o->line);
  j_str(j, key, where);
}

static void j_verdict(struct jline *j, const struct verdict *v) {
  const struct rule *r = v->rule;
  j_str(j, "action", action_name(v->action));
  if (v->monitor)
    j_bool(j, "monitor", 1);
  if (r == NULL)
    return;
  j_str(j, "matched_on", match_on_name(v->on));
  if (v->hint)
    j_str(j, "confidence", "hint");
  j_str(j, "matched", v->matched);
  j_str(j, "vendor", r->vendor->id);
  j_str(j, "category", r->category->name);
  j_str(j, "pattern", r->pattern);
  j_origin(j, "rule", &r->where);
  if (r->category->cutoff != POLICY_TIME_NEVER)
    j_time(j, "cutoff", r->category->cutoff);
  j_bool(j, "after_cutoff", v->after_cutoff);
  j_str(j, "rule_action", action_name(v->rule_action));
  const struct category_scope a = verdict_actions(v);
  if (v->from == ACTION_FROM_PRESET)
    j_str(j, "preset", a.preset);
  if (v->from == ACTION_FROM_OVERRIDE) {
    j_bool(j, "override", 1);
    j_origin(j, "override_rule", &a.override_where);
  }
  if (v->exception != NULL) {
    j_str(j, "exception", v->exception->pattern);
    j_origin(j, "exception_rule", &v->exception->where);
  }
  if (v->client_group != NULL)
    j_str(j, "client_group", v->client_group);
}

void log_decision(const struct decision *d) {
  struct jline j;
  struct timespec ts;
  char when[64], addr[64];

  clock_gettime(CLOCK_REALTIME, &ts);
  rfc3339_format(ts.tv_sec, when, sizeof(when));
  /* Milliseconds help correlate lines; insert them before the 'Z'. */
  snprintf(when + 19, sizeof(when) - 19, ".%03ldZ", ts.tv_nsec / 1000000);
  j.len = 0;
  j.truncated = false;
  j_raw(&j, "{");
  j_str(&j, "time", when);
  j_str(&j, "event", d->event);
  if (d->policy != NULL)
    j_str(&j, "policy_version", policy_version(d->policy));
  if (d->conn_id)
    j_int(&j, "conn", (long long)d->conn_id);
  if (d->client != NULL)
    j_str(&j, "client", log_fmt_addr(d->client, addr, sizeof(addr)));
  j_str(&j, "listener", d->listener);
  j_str(&j, "mode", d->mode);
  if (d->original_dst != NULL)
    j_str(&j, "original_dst", log_fmt_addr(d->original_dst, addr, sizeof(addr)));
  j_str(&j, "method", d->method);
  if (d->host != NULL)
    j_strn(&j, "host", d->host, d->host_len ? d->host_len : strlen(d->host));
  if (d->port)
    j_int(&j, "port", d->port);
  if (d->user_agent != NULL)
    j_strn(&j, "user_agent", d->user_agent, d->user_agent_len);
  if (d->verdict != NULL)
    j_verdict(&j, d->verdict);
  if (d->resolved != NULL)
    j_resolved(&j, d->resolved);
  if (d->tls != NULL)
    j_tls(&j, d->tls, d->dst_mismatch);
  else if (d->dst_mismatch)
    j_array(&j, "tags", (const char *const[]){"dst_mismatch"}, NULL, 1);
  if (d->policy_now)
    j_time(&j, "policy_time", d->policy_now);
  if (d->status)
    j_int(&j, "status", d->status);
  j_str(&j, "error", d->error);
  j_str(&j, "detail", d->detail);
  if (j.truncated)
    j_raw(&j, ",\"truncated\":true");
  j.buf[j.len++] = '}';
  j.buf[j.len++] = '\n';
  logq_write(LOGQ_DECISION, j.buf, j.len);
  if (d->verdict != NULL && strcmp(d->event, "error") != 0)
    metrics_count_decision(d->verdict); /* once per request: "error" lines repeat a verdict */
}
