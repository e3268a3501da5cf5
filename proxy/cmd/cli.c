/* Command-line parsing and the subcommands. */
#include "proxy/cmd/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "certs/ca.h"
#include "config/config.h"
#include "config/embedded.h"
#include "config/keys.h"
#include "config/lists.h"
#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/cmd/adminclient.h"
#include "proxy/cmd/check.h"
#include "proxy/cmd/export.h"
#include "proxy/cmd/lists_cli.h"
#include "proxy/base/log.h"
#include "proxy/cmd/rules.h"
#include "proxy/report/report.h"
#include "proxy/report/unmatched.h"
#include "proxy/process/privdrop.h"
#include "proxy/worker/server.h"
#include "proxy/worker/upstream.h"
#include "proxy/process/workers.h"

#ifndef EMBARGO_VERSION
#define EMBARGO_VERSION "0.0.0"
#endif

#define EXIT_DENIED 1
#define EXIT_USAGE 2

struct options {
  const char *config;
  const char *listen[CONFIG_MAX_LISTEN];     /* --listen, --intercept, --tproxy, in order */
  enum listen_mode listen_mode[CONFIG_MAX_LISTEN];
  size_t nlisten;
  char resolvers[256];
  size_t nresolvers;
  const char *log;
  const char *user;
  int64_t now;      /* 0: the real clock */
  const char *sni[8]; /* check: server names a ClientHello would carry */
  size_t nsni;
  const char *ja4;    /* check: a JA4 fingerprint */
  const char *client; /* check: judge for a client at this IP address */
  bool no_resolve;    /* check: judge names without resolving them */
  bool monitor;
  bool verbose;
  const char *format;       /* rules: nft | iptables; check: text | csv | json */
  const char *file;         /* check: destinations one a line ("-": standard input) */
  const char *rules_mode;   /* rules: intercept | tproxy */
  bool sidecar;             /* rules: a pod's output chain */
  bool ipv6;                /* rules: ip6tables-restore input */
  const char *uid;          /* rules: Embargo's user id, exempt in a sidecar */
  const char *admin;        /* reload, status: ADDR:PORT instead of admin.listen */
  const char *token_file;   /* reload, status: instead of admin.token_file */
  bool live;                /* status: liveness (/healthz) instead of readiness */
};

static const char usage_text[] =
    "Usage:\n"
    "  embargo [run] [options]              run the proxy\n"
    "  embargo check [options] DEST...      show the verdict for NAME, IP, NAME:PORT or URL\n"
    "  embargo check --file FILE [--format text|csv|json] [options]\n"
    "                                       one verdict line per destination of FILE (- stdin)\n"
    "  embargo config check FILE            validate FILE and print a summary\n"
    "  embargo config show [VENDOR]         print the built-in config and the catalogue of\n"
    "                                       built-in vendor lists (or one list)\n"
    "  embargo config keys [vendor-list]    print every key a config file (or a vendor list)\n"
    "                                       may hold\n"
    "  embargo ca init --dir DIR [--subject SITE] [--permit DOMAIN]... [--days N]\n"
    "                                       create the block-page CA (DIR/ca.key, DIR/ca.crt)\n"
    "  embargo ca show DIR                  print the CA's fingerprint, validity and how to\n"
    "                                       install it in trust stores\n"
    "  embargo rules --format nft|iptables --mode intercept|tproxy [--sidecar] [--ipv6]\n"
    "                [--uid UID]            print the firewall rules for the configuration\n"
    "  embargo report [options] [LOG...]    which clients tried to reach each vendor, from\n"
    "                                       decision logs (see embargo report --help)\n"
    "  embargo lists keygen|sign|verify|fetch  signed list bundles (see embargo lists)\n"
    "  embargo export --format rpz|unbound|dnsmasq|hosts|nft-set|squid [--vendor V]\n"
    "                 [--category C] [--action deny|log|any]\n"
    "                                       print the policy in force for another layer\n"
    "  embargo reload [options]             reload the running proxy's configuration\n"
    "  embargo status [options]             print readiness and key figures (exit 0: ready)\n"
    "  embargo status --live [options]      print liveness (exit 0: the process works)\n"
    "  embargo version                      print the version\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE       configuration file (default: the built-in configuration)\n"
    "  -l, --listen ADDR:PORT  listen here instead of the configured listeners (repeatable)\n"
    "      --intercept ADDR:PORT  add a transparent listener for NAT-redirected connections\n"
    "      --tproxy ADDR:PORT     add a transparent listener for TPROXY (needs CAP_NET_ADMIN)\n"
    "  -r, --resolver IP:PORT  DNS server instead of /etc/resolv.conf (repeatable)\n"
    "  -n, --now RFC3339       evaluate every cutoff as if it were this time\n"
    "  -m, --monitor           never deny; log what would have been denied\n"
    "  -o, --log FILE|-        decision log destination (default: standard output)\n"
    "  -u, --user NAME         started as root, run as NAME once listening (root: stay root)\n"
    "  -v, --verbose           debug diagnostics on standard error\n"
    "      --sni NAME          check: also judge this TLS server name (repeatable)\n"
    "      --ja4 FINGERPRINT   check: also judge this JA4 client fingerprint\n"
    "      --client IP         check: judge for a client at IP (its client groups)\n"
    "      --no-resolve        check: judge names without resolving them\n"
    "      --file FILE         check: destinations one a line (- for standard input)\n"
    "      --format FORMAT     check: one line per destination, text, csv or json (JSON Lines)\n"
    "      --admin ADDR:PORT   reload, status: the admin endpoint (default: admin.listen)\n"
    "      --token-file FILE   reload, status: bearer token (default: admin.token_file)\n"
    "      --live              status: ask /healthz (liveness) instead of /readyz\n"
    "  -h, --help              this text\n";

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "embargo: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n\n%s", usage_text);
  return EXIT_USAGE;
}

/* Refuses an "ip:port" option value in the words the config file uses. */
static int check_endpoint(const char *option, const char *text) {
  struct sockaddr_storage addr;
  char why[160];
  if (config_parse_endpoint(text, &addr, why, sizeof(why)) == 0)
    return 0;
  fprintf(stderr, "embargo: %s: %s\n", option, why);
  return EXIT_USAGE;
}

static int parse_options(int argc, char **argv, struct options *o) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
      {"resolver", required_argument, NULL, 'r'}, {"now", required_argument, NULL, 'n'},
      {"monitor", no_argument, NULL, 'm'},        {"log", required_argument, NULL, 'o'},
      {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
      {"sni", required_argument, NULL, 's'},      {"ja4", required_argument, NULL, 'j'},
      {"no-resolve", no_argument, NULL, 'N'},     {"intercept", required_argument, NULL, 'I'},
      {"tproxy", required_argument, NULL, 'T'},  {"format", required_argument, NULL, 'F'},
      {"mode", required_argument, NULL, 'M'},    {"sidecar", no_argument, NULL, 'S'},
      {"ipv6", no_argument, NULL, '6'},          {"uid", required_argument, NULL, 'U'},
      {"admin", required_argument, NULL, 'A'},   {"token-file", required_argument, NULL, 'K'},
      {"user", required_argument, NULL, 'u'},    {"live", no_argument, NULL, 'L'},
      {"file", required_argument, NULL, 'f'},    {"client", required_argument, NULL, 'C'},
      {NULL, 0, NULL, 0}};
  int ch;

  optind = 1;
  while ((ch = getopt_long(argc, argv, "+c:l:r:n:mo:vhs:j:Nu:", longopts, NULL)) != -1) {
    switch (ch) {
    case 'c': o->config = optarg; break;
    case 'l':
    case 'I':
    case 'T':
      if (o->nlisten == CONFIG_MAX_LISTEN)
        return usage_error("too many listeners (at most %d)", CONFIG_MAX_LISTEN);
      o->listen_mode[o->nlisten] = ch == 'I'   ? LISTEN_INTERCEPT
                                   : ch == 'T' ? LISTEN_TPROXY
                                               : LISTEN_PROXY;
      o->listen[o->nlisten++] = optarg;
      break;
    case 'r':
      if (check_endpoint("--resolver", optarg) != 0)
        return EXIT_USAGE;
      if (++o->nresolvers > CONFIG_MAX_RESOLVERS ||
          strlen(o->resolvers) + strlen(optarg) + 2 > sizeof(o->resolvers)) {
        fprintf(stderr, "embargo: --resolver: at most %d resolvers\n", CONFIG_MAX_RESOLVERS);
        return EXIT_USAGE;
      }
      if (o->resolvers[0] != '\0')
        strcat(o->resolvers, ",");
      strcat(o->resolvers, optarg);
      break;
    case 'n':
      if (rfc3339_parse(optarg, strlen(optarg), &o->now) != 0)
        return usage_error("--now: expected an RFC 3339 time like 2024-09-29T04:00:00Z, got \"%s\"",
                           optarg);
      if (o->now == 0)
        o->now = 1; /* 0 means "not set"; one second after the epoch is close enough */
      break;
    case 'm': o->monitor = true; break;
    case 'o': o->log = optarg; break;
    case 'u':
      if (optarg[0] == '\0' || strlen(optarg) >= sizeof(((struct config *)0)->user))
        return usage_error("--user: expected a user name, got \"%s\"", optarg);
      o->user = optarg;
      break;
    case 'v': o->verbose = true; break;
    case 's':
      if (o->nsni == sizeof(o->sni) / sizeof(o->sni[0]))
        return usage_error("too many --sni options (at most %zu)", sizeof(o->sni) / sizeof(o->sni[0]));
      o->sni[o->nsni++] = optarg;
      break;
    case 'j': o->ja4 = optarg; break;
    case 'C': o->client = optarg; break;
    case 'N': o->no_resolve = true; break;
    case 'F': o->format = optarg; break;
    case 'f': o->file = optarg; break;
    case 'M': o->rules_mode = optarg; break;
    case 'S': o->sidecar = true; break;
    case '6': o->ipv6 = true; break;
    case 'U': o->uid = optarg; break;
    case 'A': o->admin = optarg; break;
    case 'K': o->token_file = optarg; break;
    case 'L': o->live = true; break;
    case 'h': fputs(usage_text, stdout); exit(0);
    default: return usage_error("%s", "unknown option");
    }
  }
  return 0;
}

/* Loads the configuration and applies the command-line overrides. Returns
 * 0, or a negative code with the error in ERR (CFG then holds nothing). */
static int load_config_err(const struct options *o, struct config *cfg, char *err,
                           size_t errsize) {
  char why[160];
  size_t i;
  int rc = o->config ? config_load_file(cfg, o->config, err, errsize)
                     : config_load_default(cfg, err, errsize);
  if (rc != 0)
    return rc;
  for (i = 0; i < o->nlisten; i++) /* --listen replaces the configured listeners */
    if (o->listen_mode[i] == LISTEN_PROXY)
      cfg->nlisten = 0;
  for (i = 0; i < o->nlisten; i++) {
    struct config_listen *cl = &cfg->listen[cfg->nlisten];
    if (cfg->nlisten == CONFIG_MAX_LISTEN) {
      snprintf(err, errsize, "too many listeners (at most %d)", CONFIG_MAX_LISTEN);
      config_free(cfg);
      return EMB_ECONFIG;
    }
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->text, sizeof(cl->text), "%s", o->listen[i]);
    cl->mode = o->listen_mode[i];
    if (config_parse_endpoint(o->listen[i], &cl->addr, why, sizeof(why)) != 0) {
      snprintf(err, errsize, "%s: %s",
               cl->mode == LISTEN_PROXY    ? "--listen"
               : cl->mode == LISTEN_TPROXY ? "--tproxy"
                                           : "--intercept",
               why);
      config_free(cfg);
      return EMB_ECONFIG;
    }
    config_parse_sockaddr(o->listen[i], &cl->addr);
    cfg->nlisten++;
  }
  if (o->resolvers[0] != '\0')
    snprintf(cfg->resolvers, sizeof(cfg->resolvers), "%s", o->resolvers);
  if (o->log != NULL)
    snprintf(cfg->log_path, sizeof(cfg->log_path), "%s", o->log);
  if (o->user != NULL)
    snprintf(cfg->user, sizeof(cfg->user), "%s", o->user);
  if (o->monitor) {
    cfg->monitor = true;
    policy_set_monitor(cfg->policy, true);
  }
  for (i = 0; cfg->admin.enabled && i < cfg->nlisten; i++) {
    if (config_same_socket((const struct sockaddr *)&cfg->admin.listen,
                           (const struct sockaddr *)&cfg->listen[i].addr)) {
      snprintf(err, errsize, "%s: admin.listen: %s is the proxy listener %s", cfg->admin.where,
               cfg->admin.listen_text, cfg->listen[i].text);
      config_free(cfg);
      return EMB_ECONFIG;
    }
  }
  return 0;
}

/* load_config_err for a reload (server_load_fn). */
static int reload_config(const void *arg, struct config *out, char *err, size_t errsize) {
  memset(out, 0, sizeof(*out));
  int rc = load_config_err(arg, out, err, errsize);
  if (rc == 0 && out->lists.note[0] != '\0')
    log_diag(LOG_WARN, 0, "lists: %s", out->lists.note);
  return rc;
}

/* load_config_err, the error printed. Returns 0 or EXIT_USAGE. */
static int load_config(const struct options *o, struct config *cfg) {
  char err[1024];
  if (load_config_err(o, cfg, err, sizeof(err)) == 0)
    return 0;
  fprintf(stderr, "embargo: %s\n", err);
  return EXIT_USAGE;
}

/* The user id Embargo will run as: `user:`'s when started as root (root
 * when that user is unknown: the drop then stops the start anyway). */
static uid_t runtime_uid(const struct config *cfg) {
  const struct passwd *pw;
  if (geteuid() != 0)
    return geteuid();
  pw = cfg->user[0] != '\0' ? getpwnam(cfg->user) : NULL;
  return pw != NULL ? pw->pw_uid : 0;
}

/* ---- files a reload reads as the runtime user ------------------------------ */

#define RELOAD_FILES_MAX 64

/* The files a reload reads again: the configuration and the vendor lists
 * (the policy's sources), the token file, the upstream proxy's
 * authorization file, the block-page CA, and the list bundle's public key,
 * trust anchors and cache. */
struct reload_files {
  const char *path[RELOAD_FILES_MAX];
  size_t n;
  char ca[2][sizeof(((struct config *)0)->certs.ca_dir) + 16];
  char bundle[sizeof(((struct config *)0)->lists.cache_dir) + 16];
};

static void reload_files_of(const struct config *cfg, struct reload_files *rf) {
  const struct policy *p = cfg->policy;
  rf->n = 0;
  for (size_t i = 0; i < policy_source_count(p) && rf->n < RELOAD_FILES_MAX - 7; i++) {
    const char *name = policy_source_at(p, i)->name;
    if (strncmp(name, "builtin:", 8) != 0 && strncmp(name, "bundle:", 7) != 0)
      rf->path[rf->n++] = name;
  }
  if (cfg->lists.enabled) {
    rf->path[rf->n++] = cfg->lists.pubkey_file;
    if (cfg->lists.ca_file[0] != '\0')
      rf->path[rf->n++] = cfg->lists.ca_file;
    if (cfg->lists.serial != 0 && lists_cache_path(cfg->lists.cache_dir, rf->bundle,
                                                   sizeof(rf->bundle)))
      rf->path[rf->n++] = rf->bundle;
  }
  if (cfg->admin.token_file[0] != '\0')
    rf->path[rf->n++] = cfg->admin.token_file;
  if (cfg->upstream_proxy.authorization_file[0] != '\0')
    rf->path[rf->n++] = cfg->upstream_proxy.authorization_file;
  if (cfg->certs.ca_dir[0] != '\0') {
    snprintf(rf->ca[0], sizeof(rf->ca[0]), "%s/%s", cfg->certs.ca_dir, CA_KEY_FILE);
    snprintf(rf->ca[1], sizeof(rf->ca[1]), "%s/%s", cfg->certs.ca_dir, CA_CERT_FILE);
    rf->path[rf->n++] = rf->ca[0];
    rf->path[rf->n++] = rf->ca[1];
  }
}

static void warn_diag(void *arg, const char *msg) {
  (void)arg;
  log_diag(LOG_WARN, 0, "%s", msg);
}

static void warn_stderr(void *arg, const char *msg) {
  (void)arg;
  fprintf(stderr, "embargo: warning: %s\n", msg);
}

/* Warns about each file a reload reads that CFG's `user` will not read. */
static void warn_unreadable(const struct config *cfg, privdrop_warn_fn warn) {
  struct reload_files rf;
  reload_files_of(cfg, &rf);
  privdrop_warn_unreadable(cfg->user, rf.path, rf.n, warn, NULL);
}

/* After the privilege drop: `mark:` needs SO_MARK to work for every dial,
 * so a process that cannot set it does not start. */
static int check_mark(const struct config *cfg, char *err, size_t errsize) {
  int rc;
  if (cfg->mark == 0 || (rc = upstream_check_mark(cfg->mark)) == 0)
    return 0;
  snprintf(err, errsize, "mark: cannot set SO_MARK %u on outgoing connections: %s%s", cfg->mark,
           uv_strerror(rc),
           rc == UV_EPERM ? " (needs CAP_NET_ADMIN: start as root, which keeps it for mark:, "
                            "or grant it to the user Embargo runs as)"
                          : "");
  return rc;
}

static int cmd_run(const struct options *o) {
  struct config cfg;
  struct workers ws;
  uv_loop_t loop;
  char err[512];
  int rc;

  memset(&cfg, 0, sizeof(cfg));
  if ((rc = load_config(o, &cfg)) != 0)
    return rc;
  if ((rc = log_open(cfg.log_path, cfg.log_buffer, runtime_uid(&cfg), err, sizeof(err))) != 0) {
    fprintf(stderr, "embargo: cannot open the log: %s\n", err);
    config_free(&cfg);
    return EXIT_USAGE;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  rc = workers_init(&ws, &loop, &cfg, o->now, reload_config, o, err, sizeof(err));
  if (rc == 0 && geteuid() == 0)
    warn_unreadable(&cfg, warn_diag);
  if (rc == 0) /* every worker's listeners bound, files open, no worker running yet */
    rc = privdrop_apply(cfg.user, cfg.mark != 0, err, sizeof(err));
  if (rc == 0)
    rc = check_mark(&cfg, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "embargo: %s\n", err);
    workers_run(&ws, false);
  } else {
    log_diag(LOG_INFO, 0, "embargo %s: policy %s: %zu vendor list(s), %zu host rule(s)%s",
             EMBARGO_VERSION, policy_version(cfg.policy), policy_vendor_count(cfg.policy),
             policy_host_count(cfg.policy),
             cfg.monitor ? ", monitor mode (nothing is denied)" : "");
    log_diag(LOG_INFO, 0, "memory bound: %llu MiB of buffered data (see embargo config check)",
             (unsigned long long)(config_memory_bound(&cfg) >> 20));
    if (cfg.lists.note[0] != '\0')
      log_diag(LOG_WARN, 0, "lists: %s", cfg.lists.note);
    else if (cfg.lists.serial != 0)
      log_diag(LOG_INFO, 0, "lists: vendor lists from bundle serial %llu in %s",
               (unsigned long long)cfg.lists.serial, cfg.lists.cache_dir);
    if (cfg.lists.url[0] != '\0' && access(cfg.lists.cache_dir, W_OK | X_OK) != 0)
      log_diag(LOG_WARN, 0,
               "lists: cannot write to lists.cache_dir %s as this user (%s): fetched bundles "
               "can be neither cached nor applied",
               cfg.lists.cache_dir, strerror(errno));
    rc = workers_run(&ws, true);
  }
  workers_free(&ws);
  if (uv_loop_close(&loop) != 0)
    log_diag(LOG_WARN, 0, "event loop closed with handles still open");
  log_close();
  config_free(&cfg);
  return rc == 0 ? 0 : 1;
}

static int parse_check_format(const char *name, enum check_format *out) {
  static const struct {
    const char *name;
    enum check_format format;
  } formats[] = {{"text", CHECK_FORMAT_TEXT}, {"csv", CHECK_FORMAT_CSV}, {"json", CHECK_FORMAT_JSON}};
  for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
    if (strcmp(name, formats[i].name) == 0) {
      *out = formats[i].format;
      return 0;
    }
  }
  return -1;
}

/* An IPv4 or IPv6 address into SS (port 0). 0 or -1. */
static int parse_client(const char *text, struct sockaddr_storage *ss) {
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  memset(ss, 0, sizeof(*ss));
  if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    return 0;
  }
  return -1;
}

static int cmd_check(const struct options *o, int argc, char **argv) {
  struct config cfg;
  struct check_opts co = {.now = o->now ? o->now : (int64_t)time(NULL),
                          .ja4 = o->ja4,
                          .resolve = !o->no_resolve};
  const char *snis[8];
  char names[8][HOST_NAME_MAX_LEN + 1];
  struct sockaddr_storage client;
  size_t k;
  int rc;

  bool batch = o->file != NULL || o->format != NULL;

  if (argc == 0 && o->file == NULL)
    return usage_error("%s", "check: name at least one destination, or --file FILE");
  if (o->format != NULL && parse_check_format(o->format, &co.format) != 0)
    return usage_error("check: --format: expected text, csv or json, got \"%s\"", o->format);
  for (k = 0; k < o->nsni; k++) {
    struct host sh;
    int err = host_normalise_sni(o->sni[k], strlen(o->sni[k]), &sh); /* as a ClientHello's */
    if (err != 0 || sh.kind != HOST_NAME)
      return usage_error("--sni \"%s\": %s", o->sni[k], err ? err_str(err) : "not a host name");
    memcpy(names[k], sh.name, sh.len + 1);
    snis[k] = names[k];
  }
  co.sni = snis;
  co.nsni = o->nsni;
  if (o->client != NULL) {
    if (parse_client(o->client, &client) != 0)
      return usage_error("check: --client: expected an IP address like 10.9.0.5 or fd00::5, "
                         "got \"%s\"",
                         o->client);
    co.client = (const struct sockaddr *)&client;
  }
  memset(&cfg, 0, sizeof(cfg));
  if ((rc = load_config(o, &cfg)) != 0)
    return rc;
  rc = batch ? check_batch(&cfg, &co, o->file, argc, argv) : check_run(&cfg, &co, argc, argv);
  config_free(&cfg);
  return rc;
}

/* `config show [NAME]`: prints the built-in configuration followed by the
 * catalogue of built-in vendor lists (as the configuration O names sets
 * them), or the built-in vendor list NAME, as compiled in: a starting point
 * for a file of one's own. */
static int cmd_config_show(const struct options *o, int argc, char **argv) {
  char path[128];
  const struct embedded_file *f;
  struct config cfg;
  int rc;

  if (argc > 1)
    return usage_error("%s", "usage: embargo config show [VENDOR]");
  if (argc == 0)
    snprintf(path, sizeof(path), "config/default.yaml");
  else
    snprintf(path, sizeof(path), "config/vendors/%s.yaml", argv[0]);
  if (strchr(argc ? argv[0] : "", '/') != NULL || (f = embedded_find(path)) == NULL) {
    fprintf(stderr, "embargo: no built-in vendor list \"%s\"\n", argc ? argv[0] : "");
    return EXIT_USAGE;
  }
  fwrite(f->data, 1, f->len, stdout);
  if (argc == 1)
    return 0;
  memset(&cfg, 0, sizeof(cfg));
  if ((rc = load_config(o, &cfg)) != 0)
    return rc;
  rc = config_print_catalogue(&cfg, stdout) == 0 ? 0 : 1;
  config_free(&cfg);
  return rc;
}

static int cmd_config(const struct options *o, int argc, char **argv) {
  struct config cfg;
  char err[1024];

  if (argc >= 1 && strcmp(argv[0], "show") == 0)
    return cmd_config_show(o, argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "keys") == 0)
    return argc <= 2 && config_keys_print(argc == 2 ? argv[1] : NULL, stdout) == 0
               ? 0
               : usage_error("%s", "usage: embargo config keys [config|vendor-list]");
  if (argc != 2 || strcmp(argv[0], "check") != 0)
    return usage_error("%s", "usage: embargo config check FILE | embargo config show [VENDOR]");
  memset(&cfg, 0, sizeof(cfg));
  if (config_load_file(&cfg, argv[1], err, sizeof(err)) != 0) {
    fprintf(stderr, "embargo: %s\n", err);
    return EXIT_USAGE;
  }
  printf("%s: OK\n", argv[1]);
  config_print_summary(&cfg, stdout);
  lists_print_summary(&cfg, stdout);
  fflush(stdout);
  warn_unreadable(&cfg, warn_stderr);
  config_free(&cfg);
  return 0;
}

/* Adds the vendors of P not in INFO yet to INFO (at most MAX). */
static size_t add_vendor_info(const struct policy *p, struct report_vendor_info *info, size_t n,
                              size_t max) {
  for (size_t i = 0; p != NULL && i < policy_vendor_count(p) && n < max; i++) {
    const struct vendor *v = policy_vendor_at(p, i);
    size_t k = 0;
    while (k < n && strcmp(info[k].id, v->id) != 0)
      k++;
    if (k == n)
      info[n++] = (struct report_vendor_info){v->id, v->name, v->reference};
  }
  return n;
}

/* `report`: the legal basis of each vendor comes from the configuration's
 * lists (--config), then the built-in ones. */
static int cmd_report(const struct options *o, int argc, char **argv) {
  struct report_vendor_info info[256];
  struct policy *catalogue = NULL;
  struct config cfg;
  char err[512];
  size_t n = 0;
  int rc;

  struct options with = *o;
  for (int i = 1; i + 1 < argc; i++) /* report's own --config (it ignores the option) */
    if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0)
      with.config = argv[i + 1];
  memset(&cfg, 0, sizeof(cfg));
  if (with.config != NULL && (rc = load_config(&with, &cfg)) != 0)
    return rc;
  n = add_vendor_info(cfg.policy, info, n, sizeof(info) / sizeof(info[0]));
  if (config_load_catalogue(NULL, &catalogue, err, sizeof(err)) != 0)
    fprintf(stderr, "embargo: report: built-in lists: %s\n", err);
  n = add_vendor_info(catalogue, info, n, sizeof(info) / sizeof(info[0]));
  rc = report_main(argc, argv, info, n);
  policy_unref(catalogue);
  config_free(&cfg);
  return rc;
}

/* `ca init --dir DIR [--subject SITE] [--permit DOMAIN]... [--days N]`. */
static int cmd_ca_init(int argc, char **argv) {
  static const struct option longopts[] = {
      {"dir", required_argument, NULL, 'd'},    {"subject", required_argument, NULL, 's'},
      {"permit", required_argument, NULL, 'p'}, {"days", required_argument, NULL, 'D'},
      {NULL, 0, NULL, 0}};
  const char *permitted[CA_MAX_PERMITTED], *dir = NULL;
  char host[65] = "", err[1024], *end;
  struct ca_init_opts o = {.permitted = permitted, .days = CA_DEFAULT_DAYS, .now = time(NULL)};
  int ch;

  optind = 1;
  while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
    switch (ch) {
    case 'd': dir = optarg; break;
    case 's': o.subject = optarg; break;
    case 'p':
      if (o.npermitted == CA_MAX_PERMITTED)
        return usage_error("too many --permit options (at most %d)", CA_MAX_PERMITTED);
      permitted[o.npermitted++] = optarg;
      break;
    case 'D':
      o.days = (unsigned)strtoul(optarg, &end, 10);
      if (*end != '\0' || o.days == 0)
        return usage_error("--days: expected a number of days, got \"%s\"", optarg);
      break;
    default: return usage_error("%s", "ca init: unknown option");
    }
  }
  if (dir == NULL || optind != argc)
    return usage_error("%s", "usage: embargo ca init --dir DIR [--subject SITE] [--permit DOMAIN]...");
  if (o.subject == NULL) { /* the site defaults to this host's name */
    gethostname(host, sizeof(host) - 1);
    o.subject = host[0] ? host : "Embargo";
  }
  if (ca_init(dir, &o, err, sizeof(err)) != 0) {
    fprintf(stderr, "embargo: ca init: %s\n", err);
    return 1;
  }
  printf("created %s/%s (private, mode 0600) and %s/%s\n\n", dir, CA_KEY_FILE, dir, CA_CERT_FILE);
  return ca_show(dir, (int64_t)time(NULL), stdout, err, sizeof(err)) == 0 ? 0 : 1;
}

static int cmd_ca(int argc, char **argv) {
  char err[1024];
  if (argc >= 1 && strcmp(argv[0], "init") == 0)
    return cmd_ca_init(argc, argv);
  if (argc != 2 || strcmp(argv[0], "show") != 0)
    return usage_error("%s", "usage: embargo ca init --dir DIR ... | embargo ca show DIR");
  if (ca_show(argv[1], (int64_t)time(NULL), stdout, err, sizeof(err)) != 0) {
    fprintf(stderr, "embargo: ca show: %s\n", err);
    return 1;
  }
  return 0;
}

/* `rules`: the firewall rules for the transparent listeners configured. */
static int cmd_rules(const struct options *o) {
  struct rules_opts ro = {.uid = -1, .sidecar = o->sidecar, .ipv6 = o->ipv6,
                          .resolv_conf = "/etc/resolv.conf"};
  struct config cfg;
  char *end = NULL;
  int rc;

  if (o->format == NULL ||
      (strcmp(o->format, "nft") != 0 && strcmp(o->format, "iptables") != 0))
    return usage_error("%s", "rules: --format nft or --format iptables");
  ro.format = strcmp(o->format, "nft") == 0 ? RULES_NFT : RULES_IPTABLES;
  if (o->rules_mode == NULL || listen_mode_parse(o->rules_mode, &ro.mode) != 0 ||
      ro.mode == LISTEN_PROXY)
    return usage_error("%s", "rules: --mode intercept or --mode tproxy");
  if (o->ipv6 && ro.format != RULES_IPTABLES)
    return usage_error("%s", "rules: --ipv6 goes with --format iptables (nft covers both families)");
  if (o->uid != NULL && ((ro.uid = strtol(o->uid, &end, 10)) < 0 || *end != '\0' || end == o->uid))
    return usage_error("rules: --uid: expected a numeric user id, got \"%s\"", o->uid);
  memset(&cfg, 0, sizeof(cfg));
  if ((rc = load_config(o, &cfg)) != 0)
    return rc;
  rc = rules_print(&cfg, &ro, stdout);
  config_free(&cfg);
  return rc;
}

/* ---- reload and status ---------------------------------------------------- */

/* Where the admin endpoint is and its token: --admin / --token-file, else
 * admin.listen / admin.token_file from the configuration. */
static int admin_target(const struct options *o, struct sockaddr_storage *addr, char *token,
                        size_t tsize) {
  struct config cfg;
  int rc = 0;
  token[0] = '\0';
  if (o->token_file != NULL) {
    FILE *f = fopen(o->token_file, "r");
    size_t n;
    if (f == NULL) {
      fprintf(stderr, "embargo: --token-file %s: %s\n", o->token_file, strerror(errno));
      return EXIT_USAGE;
    }
    n = fread(token, 1, tsize - 1, f);
    fclose(f);
    while (n > 0 && strchr("\r\n \t", token[n - 1]) != NULL)
      n--;
    token[n] = '\0';
  }
  if (o->admin != NULL) {
    if (config_parse_sockaddr(o->admin, addr) == 0)
      return 0;
    return usage_error("--admin: expected ADDR:PORT like 127.0.0.1:9090, got \"%s\"", o->admin);
  }
  memset(&cfg, 0, sizeof(cfg));
  if ((rc = load_config(o, &cfg)) != 0)
    return rc;
  if (!cfg.admin.enabled) {
    fprintf(stderr, "embargo: no admin endpoint: set admin.listen in the configuration or "
                    "pass --admin ADDR:PORT\n");
    rc = EXIT_USAGE;
  } else {
    memcpy(addr, &cfg.admin.listen, sizeof(*addr));
    if (o->token_file == NULL)
      snprintf(token, tsize, "%s", cfg.admin.token);
  }
  config_free(&cfg);
  return rc;
}

#define ADMIN_TIMEOUT_MS 10000

static int cli_reload(const struct options *o) {
  struct sockaddr_storage addr;
  char token[256], err[256], *body = NULL;
  int rc = admin_target(o, &addr, token, sizeof(token));
  if (rc != 0)
    return rc;
  rc = adminclient_request((const struct sockaddr *)&addr, "POST", "/reload", token,
                           ADMIN_TIMEOUT_MS, &body, err, sizeof(err));
  if (rc < 0) {
    fprintf(stderr, "embargo: reload: %s\n", err);
    return 1;
  }
  fputs(body, rc == 200 ? stdout : stderr);
  free(body);
  return rc == 200 ? 0 : 1;
}

/* Sums the samples of metric NAME whose labels contain LABEL (or all). */
static double metric_sum(const char *text, const char *name, const char *label) {
  double sum = 0;
  size_t nlen = strlen(name);
  for (const char *line = text; line != NULL && *line; line = strchr(line, '\n')) {
    const char *end, *sp;
    if (*line == '\n')
      line++;
    end = strchr(line, '\n');
    if (end == NULL)
      end = line + strlen(line);
    if (strncmp(line, name, nlen) == 0 && (line[nlen] == '{' || line[nlen] == ' ') &&
        (sp = memrchr(line, ' ', (size_t)(end - line))) != NULL) {
      char labels[512];
      snprintf(labels, sizeof(labels), "%.*s", (int)(sp - line), line);
      if (label == NULL || strstr(labels, label) != NULL)
        sum += strtod(sp + 1, NULL);
    }
    line = end;
  }
  return sum;
}

static void print_figures(const char *m) {
  printf("workers:         %.0f event loop(s)\n", metric_sum(m, "embargo_workers", NULL));
  printf("connections:     %.0f open, %.0f accepted\n",
         metric_sum(m, "embargo_client_connections_active", NULL),
         metric_sum(m, "embargo_client_connections_total", NULL));
  printf("requests:        %.0f (%.0f CONNECT)\n", metric_sum(m, "embargo_requests_total", NULL),
         metric_sum(m, "embargo_requests_total", "kind=\"connect\""));
  printf("decisions:       %.0f deny, %.0f log\n",
         metric_sum(m, "embargo_decisions_total", "action=\"deny\""),
         metric_sum(m, "embargo_decisions_total", "action=\"log\""));
  printf("reloads:         %.0f ok, %.0f rejected\n",
         metric_sum(m, "embargo_reloads_total", "result=\"success\""),
         metric_sum(m, "embargo_reloads_total", "result=\"failure\""));
  printf("log lines lost:  %.0f\n", metric_sum(m, "embargo_log_lines_dropped_total", NULL));
}

/* One line per vendor list with a reviewed date, from the
 * embargo_vendor_list_* gauges of /metrics M. */
static void print_lists(const char *m) {
  static const char age[] = "embargo_vendor_list_age_seconds{vendor=\"";
  for (const char *line = strstr(m, age); line != NULL; line = strstr(line + 1, age)) {
    const char *id = line + sizeof(age) - 1, *q = strchr(id, '"');
    char label[160];
    double secs, max_age, stale;
    long days;
    if (q == NULL || q[1] != '}' || (line != m && line[-1] != '\n'))
      continue;
    snprintf(label, sizeof(label), "vendor=\"%.*s\"", (int)(q - id), id);
    secs = strtod(q + 2, NULL);
    max_age = metric_sum(m, "embargo_vendor_list_max_age_seconds", label);
    stale = metric_sum(m, "embargo_vendor_list_stale", label);
    days = (long)(secs / 86400);
    printf("list %.*s:%*s", (int)(q - id), id, (int)(q - id) < 10 ? 10 - (int)(q - id) : 1, "");
    if (secs < 0)
      printf("reviewed %ld day(s) after the policy clock's now", -days);
    else
      printf("reviewed %ld day(s) ago", days);
    if (max_age <= 0)
      printf(", no max_age\n");
    else if (stale > 0)
      printf(", max_age %.0f day(s): STALE, still enforced\n", max_age / 86400);
    else
      printf(", max_age %.0f day(s): fresh\n", max_age / 86400);
  }
}

/* Prints BODY after LABEL, its further lines indented under the first. */
static void print_block(const char *label, const char *body) {
  for (bool first = true; *body != '\0'; first = false) {
    size_t n = strcspn(body, "\n");
    printf("%-17s%.*s\n", first ? label : "", (int)n, body);
    body += n + (body[n] == '\n');
  }
}

/* `status --live`: asks /healthz; 0 when the process works. */
static int status_live(const struct sockaddr *sa, const char *token) {
  char err[256], *body = NULL;
  int st =
      adminclient_request(sa, "GET", "/healthz", token, ADMIN_TIMEOUT_MS, &body, err, sizeof(err));
  if (st < 0) {
    printf("embargo: not reachable: %s\n", err);
    return 1;
  }
  print_block("liveness:", body);
  free(body);
  return st == 200 ? 0 : 1;
}

static int cli_status(const struct options *o) {
  struct sockaddr_storage addr;
  char token[256], err[256], *ready = NULL, *metrics = NULL, *policy = NULL;
  int rc = admin_target(o, &addr, token, sizeof(token)), st;
  const struct sockaddr *sa = (const struct sockaddr *)&addr;
  if (rc != 0)
    return rc;
  if (o->live)
    return status_live(sa, token);
  st = adminclient_request(sa, "GET", "/readyz", token, ADMIN_TIMEOUT_MS, &ready, err, sizeof(err));
  if (st < 0) {
    printf("embargo: not reachable: %s\n", err);
    return 1;
  }
  print_block("readiness:", ready);
  if (adminclient_request(sa, "GET", "/policy", token, ADMIN_TIMEOUT_MS, &policy, err,
                          sizeof(err)) == 200) {
    const char *v = strstr(policy, "\"version\":\""), *t = strstr(policy, "\"loaded_at\":\"");
    printf("policy:          %.16s loaded %.20s\n", v != NULL ? v + 11 : "?",
           t != NULL ? t + 13 : "?");
  }
  if (adminclient_request(sa, "GET", "/metrics", token, ADMIN_TIMEOUT_MS, &metrics, err,
                          sizeof(err)) == 200) {
    print_figures(metrics);
    print_lists(metrics);
  }
  free(ready);
  free(policy);
  free(metrics);
  return st == 200 ? 0 : 1;
}

int cli_main(int argc, char **argv) {
  struct options o;
  const char *cmd = "run";
  int rc;

  memset(&o, 0, sizeof(o));
  if ((rc = parse_options(argc, argv, &o)) != 0)
    return rc;
#ifdef EMBARGO_DEFAULT_CONFIG
  /* An installed host's file (the Debian package's), when there is one. */
  if (o.config == NULL && access(EMBARGO_DEFAULT_CONFIG, F_OK) == 0)
    o.config = EMBARGO_DEFAULT_CONFIG;
#endif
  if (o.verbose)
    log_set_level(LOG_DEBUG);
  if (optind < argc)
    cmd = argv[optind++];
  if (strcmp(cmd, "version") == 0) {
    printf("embargo %s (libuv %s)\n", EMBARGO_VERSION, uv_version_string());
    return 0;
  }
  if (strcmp(cmd, "config") == 0)
    return cmd_config(&o, argc - optind, argv + optind);
  if (strcmp(cmd, "ca") == 0)
    return cmd_ca(argc - optind, argv + optind);
  if (strcmp(cmd, "report") == 0)
    return unmatched_wanted(argc - optind + 1, argv + optind - 1)
               ? unmatched_main(o.config, argc - optind + 1, argv + optind - 1)
               : cmd_report(&o, argc - optind + 1, argv + optind - 1);
  if (strcmp(cmd, "lists") == 0)
    return lists_main(o.config, o.now, argc - optind, argv + optind);
  if (strcmp(cmd, "export") == 0)
    return export_main(o.config, o.now, argc - optind + 1, argv + optind - 1);
  if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "status") == 0) {
    int first = optind - 1;
    if ((rc = parse_options(argc - first, argv + first, &o)) != 0)
      return rc;
    if (optind < argc - first)
      return usage_error("%s: unexpected argument \"%s\"", cmd, argv[first + optind]);
    return strcmp(cmd, "reload") == 0 ? cli_reload(&o) : cli_status(&o);
  }
  if (strcmp(cmd, "check") == 0) {
    /* Options may also follow the subcommand. */
    int first = optind - 1;
    if ((rc = parse_options(argc - first, argv + first, &o)) != 0)
      return rc;
    if (o.verbose)
      log_set_level(LOG_DEBUG);
    return cmd_check(&o, argc - first - optind, argv + first + optind);
  }
  if (strcmp(cmd, "rules") == 0) {
    int first = optind - 1;
    if ((rc = parse_options(argc - first, argv + first, &o)) != 0)
      return rc;
    if (optind < argc - first)
      return usage_error("rules: unexpected argument \"%s\"", argv[first + optind]);
    return cmd_rules(&o);
  }
  if (strcmp(cmd, "run") == 0) {
    int first = optind - 1;
    if (optind < argc && (rc = parse_options(argc - first, argv + first, &o)) != 0)
      return rc;
    if (o.verbose)
      log_set_level(LOG_DEBUG);
    return cmd_run(&o);
  }
  return usage_error("unknown command \"%s\"", cmd);
}
