/* The runtime configuration: listeners, resolver, timeouts, limits, client
 * ACL, logging, and the policy snapshot built from the vendor lists. Loaded
 * from YAML through libyaml; the built-in default (config/default.yaml and
 * config/vendors/NAME.yaml, embedded at build time) is used when no file is
 * given. Every error names file:line:col, the key and what was expected;
 * unknown keys are errors. */
#ifndef EMBARGO_CONFIG_CONFIG_H
#define EMBARGO_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "filters/netmatch.h"
#include "filters/normalise.h"
#include "filters/policy.h"

struct ca;

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_RESOLVERS 8
#define CONFIG_MAX_WORKERS 64 /* event loops (threads) */
#define CONFIG_MAX_PORTS 64
#define CONFIG_MAX_ADMIN_NAMES 8
#define CONFIG_MAX_CLIENT_PROFILES 8

/* What a listener accepts. */
enum listen_mode {
  LISTEN_PROXY,     /* explicit proxy: absolute-form requests and CONNECT */
  LISTEN_INTERCEPT, /* NAT REDIRECT: the original destination from SO_ORIGINAL_DST */
  LISTEN_TPROXY     /* TPROXY: the original destination is the socket's local address */
};

struct config_listen {
  char text[64];                  /* as written: "0.0.0.0:3128", "[::1]:3128" */
  struct sockaddr_storage addr;
  enum listen_mode mode;
  /* A PROXY protocol header (v1 or v2) comes first on every connection,
   * from a source in proxy_protocol_from (`proxy_protocol: true`). */
  bool proxy_protocol;
};

/* "proxy", "intercept", "tproxy". */
const char *listen_mode_name(enum listen_mode m);
/* Parses a mode name. 0 or EMB_ECONFIG. */
int listen_mode_parse(const char *s, enum listen_mode *out);

struct config_timeouts { /* milliseconds */
  uint64_t request_head;  /* whole request head must arrive within this (408) */
  uint64_t resolve;       /* DNS resolution (504) */
  uint64_t connect;       /* TCP connect to the origin (504) */
  uint64_t response;      /* origin silent while a response is due (504) */
  uint64_t idle;          /* keep-alive client between requests */
  uint64_t tunnel_idle;   /* CONNECT tunnel with no bytes either way */
  uint64_t upstream_idle; /* pooled idle upstream connection */
  uint64_t shutdown_grace; /* SIGTERM/SIGINT: how long connections in flight may finish */
};

/* The admin endpoint (/healthz, /readyz, /metrics, /policy, /reload). */
struct config_admin {
  bool enabled;                   /* admin.listen was given */
  char listen_text[64];
  struct sockaddr_storage listen;
  char where[320];                /* "file:line:col" of admin.listen, for errors */
  char token_file[1024];          /* admin.token_file as read (relative to the config), or "" */
  char token[256];                /* its content (trailing white space cut), or "" */
  /* Host names (or addresses) clients use for the endpoint besides its own
   * address and localhost: the only Host and Origin names it answers. */
  char names[CONFIG_MAX_ADMIN_NAMES][254]; /* normalised (lowercase, no trailing dot) */
  size_t nnames;
};

/* What a vendor list past its max_age does to readiness (`readiness:`). */
enum stale_lists {
  STALE_LISTS_WARN,   /* a warning in /readyz, the metrics and the log; still ready */
  STALE_LISTS_UNREADY /* /readyz answers 503 */
};

struct config_readiness {
  enum stale_lists stale_lists;
};

struct config_limits {
  size_t max_head;        /* request head bytes (431 beyond) */
  size_t max_connections; /* concurrent client connections; accept pauses at it */
  size_t max_connections_per_client; /* per client address (IPv6: per /64) */
  size_t buffer_high;     /* per-direction high-water mark, bytes */
  size_t pool_per_host;   /* idle upstream connections kept per destination */
  size_t pool_total;      /* idle upstream connections kept in all */
};

/* ClientHello inspection of CONNECT tunnels (TLS ports). */
struct config_tls {
  uint16_t ports[CONFIG_MAX_PORTS]; /* CONNECT ports whose tunnels are peeked; default {443} */
  size_t nports;
  size_t max_hello;      /* bytes buffered for the hello: 64..65536, default 16384 */
  uint64_t timeout;      /* ms to wait for a complete hello, default 10s */
  enum action on_no_sni;    /* hello without server_name: default log */
  enum action on_ech;       /* hello with encrypted_client_hello: default log */
  enum action on_not_tls;   /* first bytes are not a TLS handshake: default deny */
  enum action on_malformed; /* a broken hello: default deny */
  enum action on_too_large; /* hello larger than max_hello: default deny */
  enum action on_timeout;   /* no complete hello in time: default deny */
  enum deny_with deny_with; /* how TLS denies are refused: alert (default) or page */
};

/* The block-page CA (`certs:`). */
struct config_certs {
  char ca_dir[512];        /* as resolved (relative to the config file); "" when unset */
  size_t cache_entries;    /* minted leaves kept, default 1000 */
  struct ca *ca;           /* loaded from ca_dir (owned), or NULL */
};

/* Transparent listeners (intercept, tproxy): what the first bytes of an
 * intercepted connection must show, and what a mismatch between the name it
 * claims and where it was going costs. */
struct config_transparent {
  uint64_t timeout;           /* ms for the first bytes (a ClientHello or a request head) */
  enum action on_unknown;     /* neither TLS nor HTTP, or silent: default deny */
  enum action on_dst_mismatch; /* the claimed name does not resolve to the original destination: default log */
};

/* The resolver's cache. */
struct config_dns {
  uint64_t min_ttl;       /* ms; answers are kept at least this long, default 5s */
  uint64_t max_ttl;       /* ms; and at most this long, default 1h */
  uint64_t negative_ttl;  /* ms; NXDOMAIN/NODATA kept this long, default 30s */
  size_t cache_entries;   /* names kept, default 10000 */
  size_t cache_memory;    /* bytes kept in all, default 16 MiB */
};

/* Signed list bundles (`lists`): where Embargo fetches them, the key they
 * must be signed with, where the last good one is kept, and the bundle the
 * vendor lists of this configuration were read from. */
struct config_lists {
  bool enabled;                  /* a `lists` mapping was given */
  char url[512];                 /* https://...; "": the proxy does not fetch (the cache only) */
  char pubkey_file[512];         /* as resolved (relative to the config file) */
  unsigned char pubkey[32];      /* the Ed25519 public key read from it */
  char cache_dir[512];           /* as resolved; the last good bundle is lists.bundle there */
  uint64_t interval;             /* ms between fetches, default 6h */
  char ca_file[512];             /* trust anchors for the bundle server; "": the system's */
  char proxy[512];               /* http://host:port to fetch through (CONNECT); "": direct */
  char where[320];               /* "file:line:col" of the mapping, for messages */
  /* The bundle the vendor lists were read from; serial 0: none (compiled-in
   * lists). CREATED is the bundle's creation time, which each vendor list
   * read from it also carries (struct vendor's bundle_created). */
  uint64_t serial;
  int64_t created;
  char digest[65];               /* SHA-256 of its manifest */
  char note[1100];               /* why a cached bundle was not used, or "" */
};

#define CONFIG_MAX_PROXY_AUTH 1024

struct dommatch;

/* The site's HTTP proxy that allowed traffic goes through
 * (`upstream_proxy`): plain HTTP in absolute form, everything else as a
 * CONNECT to it. Embargo judges first; the parent only sees what is
 * allowed. */
struct config_upstream_proxy {
  bool enabled;                     /* upstream_proxy.address was given */
  struct host host;                 /* its name or address and port (normalised) */
  char address[HOST_NAME_MAX_LEN + 16]; /* "host:port" ("[v6]:port"), for keys and next-hop */
  struct dommatch *except_hosts;    /* destinations that go direct, by name (owned) */
  struct netmatch *except_nets;     /* and by address (owned) */
  char except_text[512];            /* for summaries */
  char authorization_file[512];     /* as resolved (relative to the config file), or "" */
  char authorization[CONFIG_MAX_PROXY_AUTH]; /* the Proxy-Authorization value, or "" */
};

/* Whether a destination goes direct rather than through U: DEST (its name,
 * or its IP literal; may be NULL) matches an `except` host pattern or
 * network, or ORIG_DST (an intercepted connection's original destination;
 * may be NULL) is in an `except` network. */
bool config_upstream_direct(const struct config_upstream_proxy *u, const struct host *dest,
                            const struct sockaddr *orig_dst);

/* Releases what U owns and clears it. Idempotent. */
void config_upstream_free(struct config_upstream_proxy *u);

/* A profile for the clients of some groups (`client_profiles:`): its
 * presets set their categories' actions, and without `vendors:` its lists
 * load for them. The groups are the policy snapshot's. */
struct config_client_profile {
  char profile[32];
  uint64_t groups;
};

struct config {
  struct config_listen listen[CONFIG_MAX_LISTEN];
  size_t nlisten;
  /* DNS servers "ip:port" in c-ares CSV form; empty: /etc/resolv.conf. */
  char resolvers[256];
  struct config_timeouts timeouts;
  struct config_limits limits;
  /* Client ACL (owned). A lookup returns the matching entry's text
   * ("10.0.0.0/8", interned in POLICY) for an allowed client, NULL otherwise. */
  struct netmatch *clients;
  char clients_text[512];         /* for summaries */
  /* The sources that may send a PROXY protocol header (`proxy_protocol_from`,
   * owned; NULL when not set): required when a listener has proxy_protocol. */
  struct netmatch *proxy_protocol_from;
  char proxy_protocol_from_text[512]; /* for summaries */
  uint16_t connect_ports[CONFIG_MAX_PORTS];
  size_t nconnect_ports;
  struct config_tls tls;
  struct config_transparent transparent;
  uint32_t mark;                  /* SO_MARK on every connection Embargo opens; 0: none */
  struct config_dns dns;
  struct config_certs certs;
  /* Internal destinations (loopback, link-local, this host's addresses) are
   * refused unless inside one of these ranges (owned; may be empty). */
  struct netmatch *internal_allow;
  char internal_allow_text[512];  /* for summaries */
  char log_path[512];             /* "-" for stdout, "syslog", or a file */
  char user[64];                  /* run as this user when started as root; "root" keeps root */
  size_t log_buffer;              /* bytes of decision lines queued before lines are dropped */
  size_t workers;                 /* event loops, one thread each; 0: one per CPU online */
  struct config_admin admin;
  struct config_readiness readiness;
  bool access_log;                /* log every request, not only decisions */
  bool monitor;
  char profile[32];               /* the regime preset: "us-commercial" (default), "us-federal" */
  struct config_client_profile client_profiles[CONFIG_MAX_CLIENT_PROFILES];
  size_t nclient_profiles;
  struct policy *policy;          /* owned reference */
  char source[512];               /* file the config came from, or "(built-in)" */
  struct config_lists lists;
  struct config_upstream_proxy upstream_proxy;
};

/* Fills CFG from the built-in default config. Returns 0 or a negative code
 * with a message in ERR. */
int config_load_default(struct config *cfg, char *err, size_t errsize);

/* Loads PATH (settings missing from it take the built-in defaults; a
 * `vendors` key replaces the default vendor lists, which it may name again
 * as `builtin: kaspersky`). Returns 0 or a negative code; ERR receives
 * "file:line:col: key: reason". On error CFG holds nothing to free. */
int config_load_file(struct config *cfg, const char *path, char *err, size_t errsize);

/* Prints one category line of a summary (cutoff, actions and who set them,
 * entry counts), and the basis of its preset, each line after INDENT. */
void config_print_category(const struct policy *p, const struct category *c,
                           const char *indent, void *file /* FILE * */);

/* The regime presets `profile:` accepts, in order: their names and a line
 * on what each does. NULL past the end. */
size_t config_profile_count(void);
const char *config_profile_name(size_t i);
const char *config_profile_summary(size_t i);

/* Loads every built-in vendor list, with the presets of PROFILE (NULL: the
 * default profile), into a new snapshot *OUT (caller unrefs): the catalogue
 * `config show` prints and `report` names legal bases from. Returns 0 or a
 * negative code with the reason in ERR. */
int config_load_catalogue(const char *profile, struct policy **out, char *err, size_t errsize);

/* Prints the catalogue of built-in vendor lists as YAML comments: per
 * vendor its reference, review date and categories with cutoffs, actions
 * (and who set them: list, preset, override) and entry counts; whether CFG
 * loads it. Returns 0 or a negative code (the reason printed to stderr). */
int config_print_catalogue(const struct config *cfg, void *file /* FILE * */);

struct bundle;
/* config_load_file (PATH NULL: config_load_default) with the vendor lists of
 * BUNDLE (borrowed; checked by the caller against lists.pubkey) in place of
 * the cached bundle: tries a bundle just fetched before it is cached. */
int config_load_bundle(struct config *cfg, const char *path, const struct bundle *bundle,
                       char *err, size_t errsize);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.x.y.z. */
bool config_is_loopback(const struct sockaddr *sa);

/* True if a listener on A and one on B would take the same port: same
 * family and port, and the same address or either one a wildcard. */
bool config_same_socket(const struct sockaddr *a, const struct sockaddr *b);

/* Releases what CFG owns. NULL-safe, idempotent. */
void config_free(struct config *cfg);

/* Parses "ip:port" / "[v6]:port" into ADDR. Returns 0 or EMB_EBADPORT / EMB_EBADIP. */
int config_parse_sockaddr(const char *text, struct sockaddr_storage *addr);

/* Parses TEXT like config_parse_sockaddr and, on error, writes the reason
 * the config file would give for a `listen` or `resolvers` entry into WHY
 * ("invalid port in '...' (expected ip:port, port 1 to 65535)"), so that
 * command-line options are refused in the same words. */
int config_parse_endpoint(const char *text, struct sockaddr_storage *addr, char *why,
                          size_t size);

/* Bytes of data Embargo may hold for one connection at worst: per
 * direction the queued bytes reading stops at (limits.buffer) plus one read
 * past it, and the larger of the request head (limits.max_head) and the
 * ClientHello buffer (tls_inspect.max_hello). */
uint64_t config_connection_memory(const struct config *cfg);
/* The bound on all of it: max_connections connections at worst, plus the
 * DNS cache (dns.cache_memory). Set by those keys; `config check` prints it. */
uint64_t config_memory_bound(const struct config *cfg);

/* The number of event loops (worker threads) CFG asks for: `workers`, or,
 * when it is not set, the number of CPUs online (at most
 * CONFIG_MAX_WORKERS, at least 1). */
size_t config_workers(const struct config *cfg);

/* Writes a human summary (listeners, resolver, vendors with their categories,
 * cutoffs and entry counts, exceptions, monitor) to F. */
void config_print_summary(const struct config *cfg, void *file /* FILE * */);

#endif
