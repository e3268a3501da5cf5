/* `embargo check`: one destination at a time, judged like the proxy judges
 * it, then printed in detail or, in batch (checkfile.c), as one line. */
#include "proxy/cmd/check.h"

#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>
#include <uv.h>

#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/decide/destcheck.h"
#include "proxy/base/dns.h"
#include "proxy/decide/judge.h"
#include "proxy/base/log.h"

struct lookup {
  bool done;
  enum dns_status status;
  struct dns_result result;
  struct dns_query *query;
};

static void on_lookup(void *arg, enum dns_status status, const struct dns_result *res) {
  struct lookup *l = arg;
  l->done = true;
  l->status = status;
  if (res != NULL)
    memcpy(&l->result, res, sizeof(l->result));
}

/* Resolves NAME through the configured resolver, waiting for the answer. */
static enum dns_status resolve(const struct config *cfg, const char *name, uint16_t port,
                               struct dns_result *out) {
  struct lookup l;
  struct resolver *r = NULL;
  uv_loop_t loop;
  char err[256];

  memset(&l, 0, sizeof(l));
  l.status = DNS_ERROR;
  uv_loop_init(&loop);
  if (resolver_new(&loop, cfg->resolvers, cfg->timeouts.resolve, NULL, NULL, &r, err,
                   sizeof(err)) != 0) {
    fprintf(stderr, "embargo: %s\n", err);
  } else if (resolver_lookup(r, name, port, on_lookup, &l, &l.query) == 0) {
    while (!l.done) /* bounded: c-ares times the query out */
      uv_run(&loop, UV_RUN_ONCE);
  }
  resolver_close(r);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  memcpy(out, &l.result, sizeof(*out));
  return l.status;
}

void check_format_by(const struct verdict *v, char *buf, size_t size) {
  const struct category_scope a = verdict_actions(v);
  if (v->from == ACTION_FROM_PRESET)
    snprintf(buf, size, "preset %s%s%s", a.preset, a.basis ? ": " : "", a.basis ? a.basis : "");
  else if (v->from == ACTION_FROM_OVERRIDE)
    snprintf(buf, size, "override at %s:%u:%u", a.override_where.file, a.override_where.line,
             a.override_where.col);
  else
    snprintf(buf, size, "list");
}

/* What of V->client_group's decided: its exception, override, profile or
 * the list in force for it. */
static const char *group_decided(const struct verdict *v) {
  if (v->exception != NULL)
    return "exception";
  if (v->scope != NULL)
    return v->scope->by == SCOPE_BY_OVERRIDE ? "override" : "profile";
  return "list";
}

static void print_rule(const struct verdict *v) {
  const struct rule *r = v->rule;
  const struct category_scope a = verdict_actions(v);
  char cutoff[32] = "none", by[512];

  if (r->category->cutoff != POLICY_TIME_NEVER)
    rfc3339_format(r->category->cutoff, cutoff, sizeof(cutoff));
  printf("  matched:   %s (%s%s)\n", v->matched, match_on_name(v->on),
         v->hint ? ", hint: never denies on its own" : "");
  printf("  vendor:    %s (%s)\n", r->vendor->name, r->vendor->id);
  printf("  category:  %s\n", r->category->name);
  printf("  pattern:   %s\n", r->pattern);
  printf("  rule:      %s:%u:%u\n", r->where.file, r->where.line, r->where.col);
  printf("  cutoff:    %s (%s; before: %s, after: %s)\n", cutoff,
         v->after_cutoff ? "passed" : "not yet reached", action_name(a.before),
         action_name(a.after));
  printf("  action:    %s%s\n", action_name(v->action),
         v->monitor ? " (monitor mode; the rule says deny)" : "");
  check_format_by(v, by, sizeof(by));
  printf("  set by:    %s\n", by);
  if (v->exception != NULL)
    printf("  exception: %s at %s:%u overrides the vendor rule\n", v->exception->pattern,
           v->exception->where.file, v->exception->where.line);
  if (v->client_group != NULL)
    printf("  group:     %s (the client group's %s decided)\n", v->client_group, group_decided(v));
  if (r->vendor->reference != NULL)
    printf("  reference: %s\n", r->vendor->reference);
}

static void print_resolution(enum dns_status st, const struct dns_result *res) {
  char ip[64];
  size_t i;

  if (st != DNS_OK) {
    printf("  resolved:  failed (%s); the proxy would answer 50x and open no connection\n",
           dns_status_name(st));
    return;
  }
  if (res->ncnames > 0) {
    printf("  chain:    ");
    for (i = 0; i < res->ncnames; i++)
      printf(" -> %s", res->cnames[i]);
    printf("\n");
  }
  printf("  addresses:");
  for (i = 0; i < res->naddrs; i++)
    printf(" %s", log_fmt_ip((const struct sockaddr *)&res->addrs[i], ip, sizeof(ip)));
  printf("\n");
}

/* Whether PORT's tunnels get their ClientHello inspected by the proxy. */
static bool tls_port(const struct config *cfg, uint16_t port) {
  size_t i;
  for (i = 0; i < cfg->tls.nports; i++)
    if (cfg->tls.ports[i] == port)
      return true;
  return false;
}

/* What the proxy would know of DEST at its next stage: the CONNECT
 * authority, the answer and addresses, and, on a TLS port, the hello's
 * server names (those given with --sni, else the name itself, as a client
 * sends it) with the outcome a hello without one would have. */
static void check_input(const struct config *cfg, const struct check_opts *o,
                        const struct check_dest *dest, const struct dns_answer *res,
                        const char **implied, struct judge_input *in) {
  const struct host *h = &dest->host;
  memset(in, 0, sizeof(*in));
  in->host = h;
  in->connect = !dest->http;
  in->ja4 = o->ja4;
  in->client = o->client;
  if (res != NULL) {
    in->resolved = res;
    in->dial = res->addrs;
    in->ndial = res->naddrs;
  }
  if (dest->http) { /* a plain-HTTP request: its path is judged, no hello */
    in->path = dest->path;
    in->path_len = dest->path_len;
    return;
  }
  if (!tls_port(cfg, h->port))
    return;
  in->sni = o->sni;
  in->nsni = o->nsni;
  if (o->nsni == 0 && h->kind == HOST_NAME) {
    *implied = h->name;
    in->sni = implied;
    in->nsni = 1;
  }
  if (in->nsni == 0)
    judge_add_outcome(in, cfg->tls.on_no_sni, "tls_inspect.on_no_sni");
}

/* The verdict's first line; SUFFIX follows the verdict (", UNREACHABLE"). */
static void print_verdict(const struct check_dest *d, const struct judgement *j,
                          const char *suffix) {
  const struct host *h = &d->host;
  static const char *const refusals[] = {
      [JUDGE_PORT] = "http_request_denied", [JUDGE_INTERNAL] = "destination_ip_prohibited",
      [JUDGE_SELF] = "destination_ip_prohibited"};
  const struct verdict *v = &j->verdict;
  char where[HOST_NAME_MAX_LEN + 16]; /* "name:port", "[v6]:port" */

  host_format(h, where, sizeof(where));
  if (j->refusal != JUDGE_PASS) {
    printf("%s%s: DENY\n  refused:   %s (%s)\n", d->http ? "http://" : "", where, j->detail,
           refusals[j->refusal]);
    return;
  }
  printf("%s%s%.*s: %s%s\n", d->http ? "http://" : "", where, d->http ? (int)d->path_len : 0,
         d->path ? d->path : "",
         v->action == ACTION_DENY  ? "DENY"
         : v->action == ACTION_LOG ? "ALLOW (logged)"
                                   : "ALLOW",
         suffix);
  if (j->option != NULL)
    printf("  decided:   %s\n", j->option);
}

int check_parse_dest(const char *text, size_t len, struct check_dest *out) {
  static const char https[] = "https://";
  const size_t hl = sizeof(https) - 1;
  memset(out, 0, sizeof(*out));
  if (len > 7 && strncasecmp(text, "http://", 7) == 0) {
    out->http = true;
    int rc = url_parse_absolute(text, len, &out->host, &out->path, &out->path_len);
    if (rc == 0 && out->host.port == 0)
      out->host.port = 80;
    if (rc == 0 && out->path_len == 0)
      out->path = "/", out->path_len = 1;
    return rc;
  }
  if (len > hl && strncasecmp(text, https, hl) == 0) {
    /* TLS: a CONNECT to the authority; the path is never seen. */
    size_t n = strcspn(text + hl, "/?#");
    return authority_parse(text + hl, n < len - hl ? n : len - hl, 443, &out->host);
  }
  return destination_parse(text, len, 443, &out->host);
}

/* Judges what is known of D with R's answer, if any (r->res, as the
 * proxy keeps it). DNS_OK, or DNS_ERROR when out of memory. */
static enum dns_status judge_stage(const struct config *cfg, struct destcheck *dc,
                                   const struct check_opts *o, const struct check_dest *d,
                                   bool answered, struct check_result *r) {
  struct dns_answer *a = answered ? dns_answer_new(&r->res, NULL, true) : NULL;
  struct judge_input in;
  if (answered && a == NULL)
    return DNS_ERROR;
  check_input(cfg, o, d, a, &r->implied, &in);
  judge_destination(cfg, cfg->policy, dc, &in, o->now, uv_hrtime() / 1000000, &r->j);
  dns_answer_unref(a);
  return DNS_OK;
}

enum dns_status check_judge(const struct config *cfg, struct destcheck *dc,
                            const struct check_opts *o, const struct check_dest *d,
                            struct check_result *r) {
  const struct host *h = &d->host;
  enum dns_status st;

  /* The name first, as the proxy does: a name denied by name is never
   * resolved. An IP literal's address is the one to dial. */
  memset(&r->res, 0, sizeof(r->res));
  r->implied = NULL;
  r->resolved = false;
  if (h->kind != HOST_NAME)
    dns_result_literal(&r->res, h);
  if ((st = judge_stage(cfg, dc, o, d, h->kind != HOST_NAME, r)) != DNS_OK)
    return st;
  if (judge_denies(&r->j) || h->kind != HOST_NAME || !o->resolve)
    return DNS_OK;
  st = resolve(cfg, h->name, h->port, &r->res);
  if (st != DNS_OK)
    return st; /* the verdict on the name stands */
  r->resolved = true;
  return judge_stage(cfg, dc, o, d, true, r);
}

static int check_one(const struct config *cfg, struct destcheck *dc, const struct check_opts *o,
                     const char *dest) {
  struct check_dest d;
  struct check_result r;
  int err = check_parse_dest(dest, strlen(dest), &d);

  if (err != 0) {
    printf("%s: invalid destination: %s\n", dest, err_str(err));
    return 2;
  }
  enum dns_status st = check_judge(cfg, dc, o, &d, &r);
  if (st != DNS_OK) {
    /* The verdict on the name, then why the proxy would answer 502/504
     * and open no connection. */
    print_verdict(&d, &r.j, ", UNREACHABLE");
    print_resolution(st, &r.res);
    if (r.j.verdict.rule != NULL)
      print_rule(&r.j.verdict);
    return 1;
  }
  print_verdict(&d, &r.j, "");
  if (r.resolved && r.j.refusal != JUDGE_PORT && r.res.naddrs > 0)
    print_resolution(st, &r.res);
  if (r.implied != NULL)
    printf("  sni:       %s (assumed: the name a client sends on a TLS port)\n", r.implied);
  if (r.j.verdict.rule != NULL)
    print_rule(&r.j.verdict);
  else if (r.j.refusal == JUDGE_PASS)
    printf("  no vendor rule matches\n");
  return judge_denies(&r.j) ? 1 : 0;
}

/* The client judged for, and its client groups. */
static void print_client(const struct policy *p, const struct sockaddr *client) {
  char ip[64], groups[512];
  struct sockaddr_in tmp;
  const struct sockaddr *sa = sockaddr_unmapped(client, &tmp);
  const void *addr = sa->sa_family == AF_INET
                         ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                         : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  policy_format_groups(p, policy_client_groups(p, sa->sa_family, addr), groups, sizeof(groups));
  printf("client:      %s (%s%s)\n", log_fmt_ip(sa, ip, sizeof(ip)),
         groups[0] ? "client groups: " : "in no client group", groups);
}

int check_destcheck_init(const struct config *cfg, struct destcheck *dc) {
  if (destcheck_init(dc, cfg->internal_allow) != 0) {
    fprintf(stderr, "embargo: out of memory\n");
    destcheck_free(dc);
    return -1;
  }
  for (size_t k = 0; k < cfg->nlisten; k++) /* the proxy refuses its own listeners */
    destcheck_add_self(dc, (const struct sockaddr *)&cfg->listen[k].addr);
  return 0;
}

int check_run(const struct config *cfg, const struct check_opts *o, int ndests,
              char *const *dests) {
  char at[32];
  int i, rc, status = 0;
  struct destcheck dc;

  if (check_destcheck_init(cfg, &dc) != 0)
    return 2;
  rfc3339_format(o->now, at, sizeof(at));
  printf("policy time: %s\n", at);
  if (o->client != NULL)
    print_client(cfg->policy, o->client);
  for (i = 0; i < ndests; i++) {
    rc = check_one(cfg, &dc, o, dests[i]);
    if (rc > status)
      status = rc;
  }
  destcheck_free(&dc);
  return status;
}
