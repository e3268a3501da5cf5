/* The human summary printed by `embargo check` and at start-up: what the
 * proxy will listen on, whom it serves, and what it will deny from when. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "certs/ca.h"
#include "config/config.h"
#include "filters/timefmt.h"

struct ms_field {
  const char *name;
  size_t offset;
};

static const struct ms_field timeout_fields[] = {
  {"request_head", offsetof(struct config_timeouts, request_head)},
  {"resolve", offsetof(struct config_timeouts, resolve)},
  {"connect", offsetof(struct config_timeouts, connect)},
  {"response", offsetof(struct config_timeouts, response)},
  {"idle", offsetof(struct config_timeouts, idle)},
  {"tunnel_idle", offsetof(struct config_timeouts, tunnel_idle)},
  {"upstream_idle", offsetof(struct config_timeouts, upstream_idle)},
};

static const struct ms_field limit_fields[] = {
  {"max_head", offsetof(struct config_limits, max_head)},
  {"max_connections", offsetof(struct config_limits, max_connections)},
  {"max_connections_per_client", offsetof(struct config_limits, max_connections_per_client)},
  {"buffer", offsetof(struct config_limits, buffer_high)},
  {"pool_per_host", offsetof(struct config_limits, pool_per_host)},
  {"pool_total", offsetof(struct config_limits, pool_total)},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Prints MS in the largest unit that divides it exactly, as written in YAML. */
static void print_duration(FILE *f, uint64_t ms) {
  if (ms == 0 || ms % 1000 != 0)
    fprintf(f, "%" PRIu64 "%s", ms, ms ? "ms" : "s");
  else if (ms % 3600000 == 0)
    fprintf(f, "%" PRIu64 "h", ms / 3600000);
  else if (ms % 60000 == 0)
    fprintf(f, "%" PRIu64 "m", ms / 60000);
  else
    fprintf(f, "%" PRIu64 "s", ms / 1000);
}

static void print_time(FILE *f, int64_t t) {
  char buf[32];
  if (t == POLICY_TIME_NEVER) {
    fputs("never", f);
    return;
  }
  rfc3339_format(t, buf, sizeof(buf));
  fputs(buf, f);
}

static void print_network(const struct config *cfg, FILE *f) {
  fprintf(f, "Listeners:      ");
  for (size_t i = 0; i < cfg->nlisten; i++)
    fprintf(f, "%s%s%s", i ? ", " : "", cfg->listen[i].text,
            cfg->listen[i].proxy_protocol ? " (PROXY protocol)" : "");
  fprintf(f, "%s\n", cfg->nlisten ? "" : "none");
  if (cfg->proxy_protocol_from != NULL)
    fprintf(f, "PROXY sources:  %s (proxy_protocol_from)\n",
            cfg->proxy_protocol_from_text[0] ? cfg->proxy_protocol_from_text : "none");
  if (cfg->upstream_proxy.enabled)
    fprintf(f, "Upstream proxy: %s%s%s%s (upstream_proxy)\n", cfg->upstream_proxy.address,
            cfg->upstream_proxy.except_text[0] ? ", direct for " : "",
            cfg->upstream_proxy.except_text,
            cfg->upstream_proxy.authorization[0] ? ", with Proxy-Authorization" : "");
  fprintf(f, "Resolvers:      %s\n",
          cfg->resolvers[0] ? cfg->resolvers : "system (/etc/resolv.conf)");
  fprintf(f, "Clients:        %s\n", cfg->clients_text[0] ? cfg->clients_text : "none");
  fprintf(f, "CONNECT ports:  ");
  for (size_t i = 0; i < cfg->nconnect_ports; i++)
    fprintf(f, "%s%u", i ? ", " : "", (unsigned)cfg->connect_ports[i]);
  fprintf(f, "%s\n", cfg->nconnect_ports ? "" : "none");
}

static void print_limits(const struct config *cfg, FILE *f) {
  fprintf(f, "Timeouts:       ");
  for (size_t i = 0; i < COUNT(timeout_fields); i++) {
    fprintf(f, "%s%s ", i ? ", " : "", timeout_fields[i].name);
    print_duration(f, *(const uint64_t *)((const char *)&cfg->timeouts +
                                           timeout_fields[i].offset));
  }
  fprintf(f, "\nLimits:         ");
  for (size_t i = 0; i < COUNT(limit_fields); i++)
    fprintf(f, "%s%s %zu", i ? ", " : "", limit_fields[i].name,
            *(const size_t *)((const char *)&cfg->limits + limit_fields[i].offset));
  fprintf(f, "\nWorkers:        %zu event loop(s), one thread each (%s); max_connections, "
             "max_connections_per_client and the DNS cache are the whole process's, pool_total "
             "is shared out among them",
          config_workers(cfg), cfg->workers ? "workers" : "one per CPU online");
  fprintf(f, "\nMemory bound:   %llu MiB of buffered data at most: %zu connections x %llu KiB "
             "(2 x (buffer + one 64 KiB read) + the larger of max_head and max_hello) + the DNS "
             "cache's %zu KiB, whatever the number of workers",
          (unsigned long long)(config_memory_bound(cfg) >> 20), cfg->limits.max_connections,
          (unsigned long long)(config_connection_memory(cfg) >> 10), cfg->dns.cache_memory >> 10);
  fprintf(f, "\nLog:            %s, access log %s\n",
          cfg->log_path[0] == '-' && cfg->log_path[1] == '\0' ? "standard output"
                                                              : cfg->log_path,
          cfg->access_log ? "on" : "off");
  fprintf(f, "User:           %s when started as root%s\n", cfg->user[0] ? cfg->user : "(none)",
          cfg->mark != 0 ? ", keeping CAP_NET_ADMIN for mark (SO_MARK)" : ", no capabilities");
  fprintf(f, "Monitor:        %s\n", cfg->monitor ? "on (nothing is denied; denials are logged)"
                                                  : "off (denials are enforced)");
  fprintf(f, "Readiness:      a vendor list past its max_age %s (readiness.stale_lists: %s)\n",
          cfg->readiness.stale_lists == STALE_LISTS_UNREADY ? "makes /readyz answer 503"
                                                            : "is a warning, still ready",
          cfg->readiness.stale_lists == STALE_LISTS_UNREADY ? "unready" : "warn");
}

struct action_field {
  const char *name;
  size_t offset;
};

static const struct action_field tls_actions[] = {
  {"no SNI", offsetof(struct config_tls, on_no_sni)},
  {"ECH", offsetof(struct config_tls, on_ech)},
  {"not TLS", offsetof(struct config_tls, on_not_tls)},
  {"malformed", offsetof(struct config_tls, on_malformed)},
  {"too large", offsetof(struct config_tls, on_too_large)},
  {"timeout", offsetof(struct config_tls, on_timeout)},
};

static void print_tls(const struct config_tls *tls, FILE *f) {
  fprintf(f, "TLS inspection: ");
  if (tls->nports == 0) {
    fprintf(f, "off (no ports)\n");
    return;
  }
  fprintf(f, "ports ");
  for (size_t i = 0; i < tls->nports; i++)
    fprintf(f, "%s%u", i ? ", " : "", (unsigned)tls->ports[i]);
  fprintf(f, "; hello up to %zu bytes within ", tls->max_hello);
  print_duration(f, tls->timeout);
  fprintf(f, "\n  when:         ");
  for (size_t i = 0; i < COUNT(tls_actions); i++)
    fprintf(f, "%s%s %s", i ? ", " : "", tls_actions[i].name,
            action_name(*(const enum action *)((const char *)tls + tls_actions[i].offset)));
  fprintf(f, "\n  deny with:    %s\n", tls->deny_with == DENY_WITH_PAGE
                                          ? "page (block page over TLS, minted certificate)"
                                          : "alert (TLS access_denied alert)");
}

static void print_certs(const struct config_certs *certs, FILE *f) {
  if (certs->ca == NULL) {
    fprintf(f, "Block-page CA:  none\n");
    return;
  }
  fprintf(f, "Block-page CA:  %s, %s\n  SHA-256:      %s\n  cache:        %zu leaves\n",
          certs->ca_dir, ca_subject(certs->ca), ca_fingerprint(certs->ca), certs->cache_entries);
}

static void print_dns(const struct config *cfg, FILE *f) {
  const struct config_dns *dns = &cfg->dns;
  fprintf(f, "DNS cache:      %zu entries, %zu bytes, TTL ", dns->cache_entries,
          dns->cache_memory);
  print_duration(f, dns->min_ttl);
  fputs("..", f);
  print_duration(f, dns->max_ttl);
  fputs(", negative ", f);
  print_duration(f, dns->negative_ttl);
  fprintf(f, "\nInternal allow: %s\n",
          cfg->internal_allow_text[0] ? cfg->internal_allow_text
                                      : "none (internal destinations are refused)");
}

static size_t rules_in(const struct policy *p, const struct category *c, enum rule_kind kind) {
  size_t n = 0;
  for (size_t i = 0; i < policy_rule_count(p); i++) {
    const struct rule *r = policy_rule_at(p, i);
    n += r->category == c && r->kind == kind;
  }
  return n;
}

static void print_vendor(const struct policy *p, const struct vendor *v, FILE *f) {
  char groups[512];
  fprintf(f, "  %s (%s), from %s\n", v->id, v->name, v->where.file);
  if (v->groups != 0) {
    policy_format_groups(p, v->groups, groups, sizeof(groups));
    fprintf(f, "    in force for the clients of: %s\n", groups);
  }
  if (v->reference != NULL)
    fprintf(f, "    reference: %s\n", v->reference);
  if (v->max_age != 0) {
    fprintf(f, "    reviewed: ");
    print_time(f, v->reviewed);
    fprintf(f, ", stale from ");
    print_time(f, v->reviewed + (int64_t)v->max_age);
    fputc('\n', f);
  }
  for (size_t i = 0; i < v->ncategories; i++)
    config_print_category(p, &v->categories[i], "    ", f);
  if (v->nleft_out > 0)
    fprintf(f, "    left out:      %zu names of public lists, each with its reason (embargo "
               "config show %s)\n",
            v->nleft_out, v->id);
}

/* Who set an action of A, after it: "" for the list, " (preset
 * us-federal)", " (override at FILE:LINE:COL)". */
static void print_from(const struct category_scope *a, enum action_from from, FILE *f) {
  if (from == ACTION_FROM_PRESET)
    fprintf(f, " (preset %s)", a->preset);
  else if (from == ACTION_FROM_OVERRIDE)
    fprintf(f, " (override at %s:%u:%u)", a->override_where.file, a->override_where.line,
            a->override_where.col);
}

static void print_actions(const struct category_scope *a, FILE *f) {
  fprintf(f, "  before: %s", action_name(a->before));
  print_from(a, a->before_from, f);
  fprintf(f, ", after: %s", action_name(a->after));
  print_from(a, a->after_from, f);
}

/* C's scopes: what the clients of some groups get instead. */
static void print_scopes(const struct policy *p, const struct category *c, const char *indent,
                         FILE *f) {
  char groups[256], also[256];
  for (size_t i = 0; i < c->nscopes; i++) {
    const struct category_scope *s = &c->scopes[i];
    policy_format_groups(p, s->groups, groups, sizeof(groups));
    policy_format_groups(p, s->also, also, sizeof(also));
    fprintf(f, "%s  %-14s for %s%s%s:", indent, "", groups, s->also ? " when also in " : "", also);
    print_actions(s, f);
    fputc('\n', f);
  }
}

void config_print_category(const struct policy *p, const struct category *c,
                           const char *indent, void *file) {
  FILE *f = file;
  const struct category_scope own = category_actions(c);
  fprintf(f, "%s%-14s cutoff ", indent, c->name);
  print_time(f, c->cutoff);
  print_actions(&own, f);
  fprintf(f, ", %zu host patterns", rules_in(p, c, RULE_HOST));
  if (rules_in(p, c, RULE_NETWORK) > 0)
    fprintf(f, ", %zu networks", rules_in(p, c, RULE_NETWORK));
  if (rules_in(p, c, RULE_JA4) > 0)
    fprintf(f, ", %zu JA4 fingerprints", rules_in(p, c, RULE_JA4));
  if (rules_in(p, c, RULE_PATH) > 0)
    fprintf(f, ", %zu path patterns", rules_in(p, c, RULE_PATH));
  if (c->deny_with != DENY_WITH_DEFAULT)
    fprintf(f, ", deny with %s", c->deny_with == DENY_WITH_PAGE ? "page" : "alert");
  fputc('\n', f);
  if (c->preset != NULL && c->basis != NULL)
    fprintf(f, "%s  %-14s preset %s: %s\n", indent, "", c->preset, c->basis);
  print_scopes(p, c, indent, f);
}

static void print_exceptions(const struct policy *p, FILE *f) {
  fprintf(f, "Exceptions:     %zu\n", policy_exception_count(p));
  for (size_t i = 0; i < policy_exception_count(p); i++) {
    const struct exception_rule *e = policy_exception_at(p, i);
    fprintf(f, "  %s, expires ", e->pattern);
    print_time(f, e->expires);
    if (e->reason != NULL)
      fprintf(f, " (%s)", e->reason);
    if (e->groups != 0) {
      char groups[512];
      policy_format_groups(p, e->groups, groups, sizeof(groups));
      fprintf(f, ", for the clients of: %s", groups);
    }
    fprintf(f, "\n");
  }
}

/* The client groups with their networks, and the client profiles. */
static void print_groups(const struct config *cfg, FILE *f) {
  const struct policy *p = cfg->policy;
  char text[1024];
  if (policy_group_count(p) == 0)
    return;
  fprintf(f, "Client groups:  %zu\n", policy_group_count(p));
  for (size_t i = 0; i < policy_group_count(p); i++) {
    policy_group_networks(p, i, text, sizeof(text));
    fprintf(f, "  %s: %s\n", policy_group_name(p, i), text);
  }
  for (size_t i = 0; i < cfg->nclient_profiles; i++) {
    policy_format_groups(p, cfg->client_profiles[i].groups, text, sizeof(text));
    fprintf(f, "  profile %s for the clients of: %s\n", cfg->client_profiles[i].profile, text);
  }
}

void config_print_summary(const struct config *cfg, void *file) {
  FILE *f = file;
  const struct policy *p = cfg->policy;
  fprintf(f, "Configuration:  %s\n", cfg->source);
  fprintf(f, "Policy version: %s\n", policy_version(p));
  print_network(cfg, f);
  print_limits(cfg, f);
  print_tls(&cfg->tls, f);
  print_certs(&cfg->certs, f);
  print_dns(cfg, f);
  fprintf(f, "Profile:        %s\n", policy_profile(p));
  print_groups(cfg, f);
  fprintf(f, "Vendors:        %zu, %zu host patterns, %zu networks, %zu JA4, %zu path patterns "
             "in all\n",
          policy_vendor_count(p), policy_host_count(p), policy_network_count(p),
          policy_ja4_count(p), policy_path_count(p));
  for (size_t i = 0; i < policy_vendor_count(p); i++)
    print_vendor(p, policy_vendor_at(p, i), f);
  print_exceptions(p, f);
}

/* The read buffer is the loop's (proxy/base/endpoint.c): a read adds at most this
 * much past the high-water mark before reading stops. */
#define READ_OVERSHOOT 65536

uint64_t config_connection_memory(const struct config *cfg) {
  size_t head = cfg->limits.max_head > cfg->tls.max_hello ? cfg->limits.max_head
                                                          : cfg->tls.max_hello;
  return 2 * ((uint64_t)cfg->limits.buffer_high + READ_OVERSHOOT) + head;
}

size_t config_workers(const struct config *cfg) {
  long cpus;
  if (cfg->workers > 0)
    return cfg->workers;
  cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1)
    return 1;
  return (size_t)cpus < CONFIG_MAX_WORKERS ? (size_t)cpus : CONFIG_MAX_WORKERS;
}

uint64_t config_memory_bound(const struct config *cfg) {
  return (uint64_t)cfg->limits.max_connections * config_connection_memory(cfg) +
         cfg->dns.cache_memory;
}

/* Whether CFG loads the built-in list of V (by id, from the binary). */
static const struct vendor *loaded_builtin(const struct config *cfg, const struct vendor *v) {
  const struct vendor *mine = policy_find_vendor(cfg->policy, v->id);
  return mine != NULL && strcmp(mine->where.file, v->where.file) == 0 ? mine : NULL;
}

static void print_entry(const struct policy *p, const struct vendor *v, bool loaded, FILE *f) {
  fprintf(f, "#\n# %s: %s (%s)\n", v->id, v->name,
          loaded ? "loaded" : "not loaded: name it under `vendors:` to load it");
  if (v->reference != NULL)
    fprintf(f, "#   reference: %s\n", v->reference);
  if (v->reviewed != 0) {
    fprintf(f, "#   reviewed:  ");
    print_time(f, v->reviewed);
    if (v->max_age != 0) {
      fprintf(f, ", stale from ");
      print_time(f, v->reviewed + (int64_t)v->max_age);
    }
    fputc('\n', f);
  }
  for (size_t i = 0; i < v->ncategories; i++)
    config_print_category(p, &v->categories[i], "#     ", f);
  if (v->nleft_out > 0)
    fprintf(f, "#   left out:  %zu names of public domain lists, each with its reason\n",
            v->nleft_out);
}

int config_print_catalogue(const struct config *cfg, void *file) {
  FILE *f = file;
  struct policy *cat = NULL;
  char err[512];
  int rc = config_load_catalogue(cfg->profile, &cat, err, sizeof(err));
  if (rc < 0) {
    fprintf(stderr, "embargo: %s\n", err);
    return rc;
  }
  fprintf(f, "\n# ---- Built-in vendor lists, as profile %s sets them ----\n"
             "# `embargo config show NAME` prints one with the source of every entry;\n"
             "# `embargo --config FILE config show` shows them as FILE sets them.\n"
             "# Profiles:\n",
          cfg->profile);
  for (size_t i = 0; i < config_profile_count(); i++)
    fprintf(f, "#   %-14s %s\n", config_profile_name(i), config_profile_summary(i));
  for (size_t i = 0; i < policy_vendor_count(cat); i++) {
    const struct vendor *v = policy_vendor_at(cat, i), *mine = loaded_builtin(cfg, v);
    print_entry(mine != NULL ? cfg->policy : cat, mine != NULL ? mine : v, mine != NULL, f);
  }
  policy_unref(cat);
  return 0;
}
