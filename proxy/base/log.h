/* Logging: the JSON decision log (one object per line, every deny and every
 * log decision, optionally every request) and human diagnostics on stderr.
 * Peer-supplied bytes are escaped and truncated here, so a hostile request
 * can never break a line or the JSON. */
#ifndef EMBARGO_PROXY_LOG_H
#define EMBARGO_PROXY_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "filters/policy-t.h"

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Opens the decision log: "-" or NULL is standard output, "syslog" sends
 * each line to syslog (facility daemon, level info), anything else is a
 * file opened for appending (created 0640 if missing). A file path that is
 * a symbolic link, a file owned by anyone but root or OWNER (the user
 * Embargo runs as), and a regular file with more than one name are
 * refused. Lines (diagnostics too) go through a writer thread: at most
 * BOUND bytes of decision lines are queued, and a line that does not fit is
 * dropped and counted, so a stalled reader never blocks the proxy. Returns
 * 0, or a negative errno with the reason (naming the file) in ERR. */
int log_open(const char *path, size_t bound, uid_t owner, char *err, size_t errsize);
/* Reopens the log file (SIGUSR1, after logrotate moved it), under the same
 * rules. Standard output and syslog need nothing. Returns 0, or a negative
 * errno with the reason in ERR; the old file then stays in use. */
int log_reopen(char *err, size_t errsize);
/* The destination log_open was given ("-", "syslog" or a path). */
const char *log_destination(void);
/* Flushes (waiting at most 2 s for a stalled reader) and stops the writer. */
void log_close(void);
void log_set_level(enum log_level level);

/* A diagnostic line on stderr: "embargo[conn 12]: message". CONN_ID 0 means
 * not about a connection. */
void log_diag(enum log_level level, uint64_t conn_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct dns_answer;
struct policy;

#define TLS_EVIDENCE_MAX 8

/* What the ClientHello of a tunnel showed; strings borrowed. */
struct tls_evidence {
  const char *outcome;   /* "hello", "not_tls", "malformed", "too_large", "timeout" */
  const char *reason;    /* why it is malformed, or NULL */
  const char *sni[TLS_EVIDENCE_MAX];
  size_t nsni;
  const char *alpn[TLS_EVIDENCE_MAX]; /* protocol names, escaped when written */
  size_t alpn_len[TLS_EVIDENCE_MAX];
  size_t nalpn;
  const char *versions[TLS_EVIDENCE_MAX]; /* "TLS1.3", ... */
  size_t nversions;
  bool ech;
  const char *ja4;       /* NULL unless a hello was parsed */
  const char *tags[TLS_EVIDENCE_MAX]; /* "sni_mismatch", "no_sni", ... */
  size_t ntags;
};

/* Everything a decision line can say. Pointers are borrowed; NULL or 0
 * fields are left out of the line. */
struct decision {
  const char *event;       /* "deny", "log", "access", "error" */
  const struct policy *policy; /* the snapshot the verdict came from: its version is logged */
  uint64_t conn_id;
  const struct sockaddr *client;
  const char *listener;    /* "127.0.0.1:3128" */
  const char *method;      /* request method as sent (escaped) */
  const char *host;        /* destination host, normalised when valid */
  size_t host_len;         /* 0: strlen(host) */
  uint16_t port;
  const struct verdict *verdict;
  int64_t policy_now;      /* the clock the cutoffs were compared with */
  int status;              /* HTTP status sent, 0 if none */
  const char *error;       /* Proxy-Status error type, or NULL */
  const char *detail;      /* free-form reason, or NULL */
  const struct tls_evidence *tls; /* ClientHello evidence, or NULL */
  const struct dns_answer *resolved; /* CNAME chain and addresses, or NULL */
  const char *user_agent;  /* the request's User-Agent (escaped), or NULL */
  size_t user_agent_len;
  const char *mode;        /* transparent listeners: "intercept" or "tproxy" */
  const struct sockaddr *original_dst; /* transparent: where the client was going */
  bool dst_mismatch;       /* the claimed name does not resolve to original_dst */
};

/* Writes D as one JSON line to the decision log. */
void log_decision(const struct decision *d);

/* Formats ADDR as "ip:port" ("[v6]:port") into BUF. Returns BUF. */
char *log_fmt_addr(const struct sockaddr *addr, char *buf, size_t size);

/* Formats ADDR's IP (no port) into BUF. Returns BUF. */
char *log_fmt_ip(const struct sockaddr *addr, char *buf, size_t size);

/* JSON string escaping for other writers: appends the escaped form of
 * S[0..LEN) to BUF (at most MAXIN input bytes, then "..."), returns the new
 * length; never writes past SIZE-1 and always NUL-terminates. */
size_t log_json_escape(char *buf, size_t pos, size_t size, const char *s, size_t len,
                       size_t maxin);

#endif
